// The packages as users install them: every public package is packed (`npm pack`), the tarballs
// are installed into a fresh project outside the workspace, and each package README's example
// (its first ```ts block, read from the README itself so the two cannot drift) runs there.
//
// - A published package must not depend on an unpublished one: such packages are detected and
//   not installed (none today: every package under packages/ is public).
// - better-sqlite3 is installed with --ignore-scripts and given the workspace's own compiled
//   binding (same version, same Node): compiling it again needs node-gyp's headers from the network.
// - Dependencies come from npm's cache when there (--prefer-offline), else from the registry.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const require = createRequire(import.meta.url);

interface Pkg {
  dir: string;
  name: string;
  private: boolean;
  dependencies: Record<string, string>;
}

const workspace: Pkg[] = fs
  .readdirSync(path.join(ROOT, 'packages'))
  .map((d) => path.join(ROOT, 'packages', d))
  .filter((d) => fs.existsSync(path.join(d, 'package.json')))
  .map((dir) => {
    const p = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as Omit<
      Pkg,
      'dir'
    >;
    return { dir, name: p.name, private: p.private === true, dependencies: p.dependencies ?? {} };
  });
const byName = new Map(workspace.map((p) => [p.name, p]));
const published = workspace.filter((p) => !p.private);

/** `a → b` for every published package a whose dependency b (directly or not) is not published. */
function unpublishedDependencies(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const walk = (p: Pkg, seen: Set<string>): string[] =>
    Object.keys(p.dependencies).flatMap((dep) => {
      const d = byName.get(dep);
      if (d === undefined || seen.has(dep)) return [];
      seen.add(dep);
      return d.private ? [dep] : walk(d, seen);
    });
  for (const p of published) {
    const bad = walk(p, new Set());
    if (bad.length > 0) out.set(p.name, bad);
  }
  return out;
}

/**
 * README examples that cannot run as one program (e.g. they need several processes), by package,
 * with the reason: skipped, not failed, and listed so a reader sees which. None today: every
 * example is a whole program (a cluster runs in one process over loopback TCP).
 */
const NOT_SELF_CONTAINED: Record<string, string> = {};
/** Published packages that depend on an unpublished one (see the header). None today. */
const KNOWN_UNPUBLISHED: Record<string, string[]> = {};

function firstTsBlock(readme: string): string | undefined {
  const m = /```(?:ts|typescript)\n([\s\S]*?)```/.exec(readme);
  return m?.[1];
}

describe('the packages as users install them', () => {
  const project = fs.mkdtempSync(path.join(os.tmpdir(), 'tspaxos-users-'));
  afterAll(() => fs.rmSync(project, { recursive: true, force: true }));

  const bad = unpublishedDependencies();
  const installable = published.filter((p) => !bad.has(p.name));

  it('no published package depends on an unpublished one, except the known ones', () => {
    const found = Object.fromEntries(bad);
    for (const [name, deps] of Object.entries(found)) {
      expect(KNOWN_UNPUBLISHED[name], `${name} depends on unpublished ${deps.join(', ')}`).toEqual(
        deps,
      );
    }
    // The check itself: a planted private dependency is caught.
    const planted = new Map(byName);
    const victim = installable[0]!;
    expect(victim).toBeDefined();
    planted.set('@tspaxos/planted', {
      dir: '',
      name: '@tspaxos/planted',
      private: true,
      dependencies: {},
    });
    victim.dependencies = { ...victim.dependencies, '@tspaxos/planted': '*' };
    byName.set('@tspaxos/planted', planted.get('@tspaxos/planted')!);
    try {
      expect(unpublishedDependencies().get(victim.name)).toContain('@tspaxos/planted');
    } finally {
      delete victim.dependencies['@tspaxos/planted'];
      byName.delete('@tspaxos/planted');
    }
  });

  it(
    'packs, installs outside the workspace, and runs each README example',
    { timeout: 600_000 },
    () => {
      expect(installable.map((p) => p.name).sort()).toEqual([
        '@tspaxos/checkpoint',
        '@tspaxos/crc-wasm',
        '@tspaxos/learner',
        '@tspaxos/paxos',
        '@tspaxos/sim',
        '@tspaxos/storage',
        '@tspaxos/transport',
      ]);
      const tarballs = installable.map((p) => {
        const out = execFileSync('npm', ['pack', '--silent', '--pack-destination', project], {
          cwd: p.dir,
          encoding: 'utf8',
        });
        const file = path.join(project, out.trim().split('\n').pop()!);
        expect(fs.existsSync(file), file).toBe(true);
        return file;
      });
      fs.writeFileSync(
        path.join(project, 'package.json'),
        JSON.stringify({ name: 'tspaxos-user', private: true, type: 'module' }),
      );
      const install = spawnSync(
        'npm',
        ['install', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', ...tarballs],
        { cwd: project, encoding: 'utf8', timeout: 300_000 },
      );
      expect(install.status, install.stderr).toBe(0);
      // better-sqlite3: the workspace's compiled binding (same version, checked).
      const wsSqlite = path.dirname(require.resolve('better-sqlite3/package.json'));
      const userSqlite = path.join(project, 'node_modules', 'better-sqlite3');
      const version = (dir: string) =>
        (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string })
          .version;
      expect(version(userSqlite)).toBe(version(wsSqlite));
      fs.mkdirSync(path.join(userSqlite, 'build', 'Release'), { recursive: true });
      fs.copyFileSync(
        path.join(wsSqlite, 'build', 'Release', 'better_sqlite3.node'),
        path.join(userSqlite, 'build', 'Release', 'better_sqlite3.node'),
      );
      // Nothing resolves back into the workspace: the installed copies are real directories.
      for (const p of installable) {
        const installed = path.join(project, 'node_modules', ...p.name.split('/'));
        expect(fs.lstatSync(installed).isSymbolicLink(), p.name).toBe(false);
      }

      const ran: string[] = [];
      for (const p of installable) {
        const readme = fs.readFileSync(path.join(p.dir, 'README.md'), 'utf8');
        const example = firstTsBlock(readme);
        expect(example, `${p.name} README has a ts example`).toBeDefined();
        if (NOT_SELF_CONTAINED[p.name] !== undefined) continue;
        // Fixed ports in an example could meet another process on a shared machine: port 0 instead.
        const source = example!.replace(/port: 71\d\d\b(?=[^\n]*\/\/ port 0)/g, 'port: 0');
        const js = ts.transpileModule(source, {
          compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
        }).outputText;
        const file = path.join(project, `example-${p.name.split('/')[1]}.mjs`);
        fs.writeFileSync(file, js);
        const r = spawnSync(process.execPath, [file], {
          cwd: project,
          encoding: 'utf8',
          timeout: 60_000,
        });
        expect(r.status, `${p.name} README example:\n${r.stderr}`).toBe(0);
        ran.push(p.name);
      }
      // Every public package's example ran (none skipped, none left out as uninstallable).
      expect(ran.sort()).toEqual(published.map((p) => p.name).sort());
    },
  );
});
