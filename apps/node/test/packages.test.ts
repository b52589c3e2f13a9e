// The packages as users install them, one by one: every workspace package is packed (`npm pack`),
// and for each one a fresh project outside the workspace installs its tarball with only the
// tarballs of the @tspaxos packages it depends on (transitively), never the registry's. There its
// README example runs as plain JavaScript on this Node (`node example.mjs`: the README's first
// ```js block, read from the README itself so the two cannot drift). Every README program (that
// example, and each ```ts block that imports @tspaxos packages) is type-checked with `tsc` against
// the installed .d.ts files, and the TypeScript ones run too, transpiled as `npx tsx` would.
//
// - better-sqlite3 is installed with --ignore-scripts and given the workspace's own compiled
//   binding (same version, same Node, checked): compiling it from source takes ~2 minutes per
//   project on 2 cores, and node-gyp's headers come from the network.
// - Third-party dependencies come from npm's cache when there (--prefer-offline), else from the
//   registry; @tspaxos/* come from the tarballs (the lock file's `resolved` is checked).
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const require = createRequire(import.meta.url);
const TSC = require.resolve('typescript/bin/tsc');

interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  license?: string;
  main?: string;
  types?: string;
  bin?: Record<string, string>;
  exports?: Record<string, unknown>;
  dependencies?: Record<string, string>;
  engines?: Record<string, string>;
  files?: string[];
  publishConfig?: { access?: string };
}
interface Pkg {
  dir: string;
  manifest: Manifest;
  /** Its @tspaxos dependencies, transitively. */
  closure: string[];
}

const dirs = ['packages', 'apps'].flatMap((top) =>
  fs
    .readdirSync(path.join(ROOT, top))
    .map((d) => path.join(ROOT, top, d))
    .filter((d) => fs.existsSync(path.join(d, 'package.json'))),
);
const manifests = new Map(
  dirs.map((dir) => {
    const m = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as Manifest;
    return [m.name, { dir, manifest: m }];
  }),
);
const internal = (m: Manifest) => Object.keys(m.dependencies ?? {}).filter((d) => manifests.has(d));
function closureOf(name: string, seen = new Set<string>()): string[] {
  for (const dep of internal(manifests.get(name)!.manifest)) {
    if (seen.has(dep)) continue;
    seen.add(dep);
    closureOf(dep, seen);
  }
  return [...seen].sort();
}
const packages: Pkg[] = [...manifests.values()]
  .map(({ dir, manifest }) => ({ dir, manifest, closure: closureOf(manifest.name) }))
  .sort((a, b) => a.manifest.name.localeCompare(b.manifest.name));

/** Every `./dist/…` file a manifest points at (main, types, bin, exports), without the `./`. */
function entryFiles(m: Manifest): string[] {
  const out = new Set<string>();
  const add = (v: unknown): void => {
    if (typeof v === 'string') out.add(v.replace(/^\.\//, ''));
    else if (v !== null && typeof v === 'object') Object.values(v).forEach(add);
  };
  add(m.main);
  add(m.types);
  add(m.bin);
  add(m.exports);
  return [...out].filter((f) => f !== 'package.json');
}

/** The README's fenced blocks of one language. */
function blocks(readme: string, langs: string[]): string[] {
  const re = new RegExp('```(?:' + langs.join('|') + ')\\n([\\s\\S]*?)```', 'g');
  return [...readme.matchAll(re)].map((m) => m[1]!);
}
const importsOf = (source: string) =>
  [...source.matchAll(/from '(@tspaxos\/[^/']+)/g)].map((m) => m[1]!);

/** The packages (bare specifiers, `node:` built-ins aside) a package's .d.ts files import. */
function declarationImports(dir: string): string[] {
  const specs = new Set<string>();
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const f = path.join(d, e.name);
      if (e.isDirectory() && e.name !== 'node_modules') walk(f);
      else if (/\.d\.c?ts$/.test(e.name)) {
        const text = fs.readFileSync(f, 'utf8');
        const re = /(?:from\s+|import\(\s*|reference types=)['"]([^'"]+)['"]/g;
        for (const [, spec] of text.matchAll(re)) {
          if (spec!.startsWith('.') || spec!.startsWith('node:')) continue;
          const parts = spec!.split('/');
          specs.add(spec!.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!);
        }
      }
    }
  };
  walk(dir);
  return [...specs].sort();
}

/** How each bin is tried once installed, and what it must print. */
const BIN_SMOKE: Record<string, { args: string[]; prints: RegExp }> = {
  tspaxos: { args: ['--help'], prints: /Usage: tspaxos/ },
  'tspaxos-sim': { args: ['--seeds', '2'], prints: /2 passed, 0 failed/ },
};

function run(cmd: string, args: string[], cwd: string, timeoutMs: number) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}${r.error ? `\n${r.error}` : ''}` };
}

describe('the packages as users install them, each alone', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tspaxos-users-'));
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));
  const tarballs = new Map<string, { file: string; files: string[] }>();
  /** Package name → the project that installed it alone. */
  const projects = new Map<string, string>();

  beforeAll(() => {
    for (const p of packages) {
      const out = execFileSync('npm', ['pack', '--json', '--pack-destination', work], {
        cwd: p.dir,
        encoding: 'utf8',
      });
      const [info] = JSON.parse(out) as [{ filename: string; files: { path: string }[] }];
      tarballs.set(p.manifest.name, {
        file: path.join(work, info.filename),
        files: info.files.map((f) => f.path),
      });
    }
  }, 180_000);

  it(
    'every package is publishable: public, MIT, engines, and its tarball holds what it names',
    {
      timeout: 240_000,
    },
    () => {
      expect(packages.map((p) => p.manifest.name)).toEqual([
        '@tspaxos/checkpoint',
        '@tspaxos/core',
        '@tspaxos/crc-wasm',
        '@tspaxos/learner',
        '@tspaxos/node',
        '@tspaxos/paxos',
        '@tspaxos/sim',
        '@tspaxos/storage',
        '@tspaxos/transport',
      ]);
      for (const { manifest: m } of packages) {
        expect(m.private, m.name).toBeUndefined();
        expect(m.license, m.name).toBe('MIT');
        expect(m.publishConfig?.access, m.name).toBe('public'); // scoped packages default to restricted
        expect(m.engines?.node, m.name).toBe('>=20.15');
        const files = tarballs.get(m.name)!.files;
        for (const f of ['package.json', 'README.md', 'LICENSE', ...entryFiles(m)])
          expect(files, `${m.name} tarball`).toContain(f);
      }
      // What npm would say on publishing: nothing but that nobody is logged in (a bin path it would
      // rewrite, a field it would fix, are warnings here). --dry-run: never published for real.
      for (const { dir, manifest: m } of packages) {
        const r = run('npm', ['publish', '--dry-run', '--offline'], dir, 60_000);
        expect(r.status, `${m.name} npm publish --dry-run:\n${r.out}`).toBe(0);
        const warnings = r.out
          .split('\n')
          .filter((l) => /^npm (warn|error)/i.test(l) && !/requires you to be logged in/.test(l));
        expect(warnings, `${m.name} npm publish --dry-run`).toEqual([]);
      }
      // The server's dashboard, read next to dist/ at run time.
      expect(tarballs.get('@tspaxos/node')!.files).toContain('public/index.html');
      // The checks themselves: an undeclared import in a .d.ts is seen; so is a missing named file.
      const planted = fs.mkdtempSync(path.join(work, 'planted-'));
      fs.writeFileSync(
        path.join(planted, 'index.d.ts'),
        "import { a } from '@x/y/sub';\nimport type { B } from 'left-pad';\nimport './rel';\n" +
          "import { c } from 'node:fs';\nexport type D = import('zed').Z;\n",
      );
      expect(declarationImports(planted)).toEqual(['@x/y', 'left-pad', 'zed']);
      expect(entryFiles({ name: 'x', version: '0', bin: { x: './dist/nope.js' } })).toEqual([
        'dist/nope.js',
      ]);
    },
  );

  // One project per package; sequential: each install is CPU-bound on a shared 2-core machine.
  for (const p of packages) {
    const name = p.manifest.name;
    it(
      `${name}: installs alone with its tarball dependencies and runs its README example`,
      {
        timeout: 300_000,
      },
      () => {
        const project = path.join(work, name.split('/')[1]!);
        fs.mkdirSync(project);
        const installed = [name, ...p.closure];
        fs.writeFileSync(
          path.join(project, 'package.json'),
          JSON.stringify({
            name: 'tspaxos-user',
            private: true,
            type: 'module',
            dependencies: Object.fromEntries(
              installed.map((n) => [n, `file:${tarballs.get(n)!.file}`]),
            ),
          }),
        );
        const install = run(
          'npm',
          ['install', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund'],
          project,
          240_000,
        );
        expect(install.status, install.out).toBe(0);
        // Exactly these @tspaxos packages, every one from its tarball, none a link into the workspace.
        const lock = JSON.parse(
          fs.readFileSync(path.join(project, 'package-lock.json'), 'utf8'),
        ) as {
          packages: Record<string, { resolved?: string; link?: boolean }>;
        };
        const ours = Object.entries(lock.packages).filter(([k]) =>
          k.includes('node_modules/@tspaxos/'),
        );
        expect(ours.map(([k]) => k.replace(/^.*node_modules\//, '')).sort()).toEqual(
          installed.sort(),
        );
        for (const [k, v] of ours) {
          expect(v.resolved, k).toMatch(/^file:.*\.tgz$/);
          expect(v.link, k).toBeUndefined();
        }

        const sqlite = path.join(project, 'node_modules', 'better-sqlite3');
        if (fs.existsSync(sqlite)) {
          const wsSqlite = path.dirname(require.resolve('better-sqlite3/package.json'));
          const version = (dir: string) =>
            (
              JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as {
                version: string;
              }
            ).version;
          expect(version(sqlite)).toBe(version(wsSqlite));
          fs.mkdirSync(path.join(sqlite, 'build', 'Release'), { recursive: true });
          fs.copyFileSync(
            path.join(wsSqlite, 'build', 'Release', 'better_sqlite3.node'),
            path.join(sqlite, 'build', 'Release', 'better_sqlite3.node'),
          );
        }
        projects.set(name, project);

        // Its declarations import only what it declares as dependencies (a user's tsc resolves
        // nothing else). Read here, not type-checked with skipLibCheck off: that costs ~10 s of
        // @types/node per project on a loaded machine.
        const own = path.join(project, 'node_modules', ...name.split('/'));
        const declared = new Set([name, ...Object.keys(p.manifest.dependencies ?? {})]);
        const undeclared = declarationImports(own).filter((spec) => !declared.has(spec));
        expect(undeclared, `${name} .d.ts imports undeclared packages`).toEqual([]);

        const readme = fs.readFileSync(path.join(p.dir, 'README.md'), 'utf8');
        const [example] = blocks(readme, ['js', 'javascript']);
        expect(example, `${name} README has a plain-JavaScript example`).toBeDefined();
        // The example uses only what this project installed (it is what a user of this package has).
        for (const imported of importsOf(example!)) expect(installed, name).toContain(imported);
        // Under the name its README gives it (`node hello.mjs` for @tspaxos/paxos's hello world).
        const file = /`node (\S+\.mjs)`/.exec(readme)?.[1] ?? 'example.mjs';
        fs.writeFileSync(path.join(project, file), example!);
        const ran = run(process.execPath, [file], project, 120_000);
        expect(ran.status, `${name} README example:\n${ran.out}`).toBe(0);

        // Bins run from the installed tarball (a shebang, the executable bit, their imports).
        for (const bin of Object.keys(p.manifest.bin ?? {})) {
          const smoke = BIN_SMOKE[bin];
          expect(smoke, `a smoke run for bin ${bin}`).toBeDefined();
          const r = run(
            path.join(project, 'node_modules', '.bin', bin),
            smoke!.args,
            project,
            120_000,
          );
          expect(r.status, `${bin} ${smoke!.args.join(' ')}:\n${r.out}`).toBe(0);
          expect(r.out, bin).toMatch(smoke!.prints);
        }
      },
    );
  }

  it(
    'every README program type-checks with tsc, and the TypeScript ones run too (transpiled)',
    {
      timeout: 400_000,
    },
    () => {
      expect([...projects.keys()].sort()).toEqual(packages.map((p) => p.manifest.name));
      const checked: string[] = [];
      const perProject = new Map<string, string[]>();
      const tsPrograms: { project: string; file: string; source: string }[] = [];
      for (const p of packages) {
        const readme = fs.readFileSync(path.join(p.dir, 'README.md'), 'utf8');
        const programs = [
          ...blocks(readme, ['js', 'javascript'])
            .slice(0, 1)
            .map((s) => ({ s, ext: 'mjs' })),
          // A ts block without imports of ours is a fragment (it names things defined elsewhere).
          ...blocks(readme, ['ts', 'typescript'])
            .filter((s) => importsOf(s).length > 0)
            .map((s) => ({ s, ext: 'mts' })),
        ];
        for (const [i, { s, ext }] of programs.entries()) {
          // The package's own project when it has every import, else the smallest that has them
          // (e.g. the checkpoint README's node example runs under @tspaxos/paxos, which brings it).
          const needs = importsOf(s);
          const home = [p, ...packages]
            .filter((q) => needs.every((n) => n === q.manifest.name || q.closure.includes(n)))
            .sort((a, b) => (a === p ? -1 : b === p ? 1 : a.closure.length - b.closure.length))[0];
          expect(
            home,
            `${p.manifest.name} README block ${i}: no package brings ${needs}`,
          ).toBeDefined();
          const project = projects.get(home!.manifest.name)!;
          const file = `readme-${p.manifest.name.split('/')[1]}-${i}.${ext}`;
          fs.writeFileSync(path.join(project, file), s);
          perProject.set(project, [...(perProject.get(project) ?? []), file]);
          if (ext === 'mts') tsPrograms.push({ project, file, source: s });
          checked.push(`${p.manifest.name}#${i}`);
        }
      }
      for (const [project, files] of perProject) {
        fs.writeFileSync(
          path.join(project, 'tsconfig.json'),
          JSON.stringify({
            compilerOptions: {
              strict: true,
              noEmit: true,
              allowJs: true,
              checkJs: true,
              noImplicitAny: false, // plain JavaScript examples carry no annotations
              module: 'nodenext',
              moduleResolution: 'nodenext',
              target: 'es2022',
              types: ['node'],
              typeRoots: [path.join(ROOT, 'node_modules', '@types')],
              skipLibCheck: true, // the .d.ts imports are checked above, per package
            },
            files,
          }),
        );
        const tsc = run(process.execPath, [TSC, '-p', 'tsconfig.json'], project, 240_000);
        expect(tsc.status, `tsc in ${project}:\n${tsc.out}`).toBe(0);
      }
      for (const p of packages)
        expect(checked, 'the JavaScript example').toContain(`${p.manifest.name}#0`);
      // What `npx tsx example.ts` does: strip the types, run on this Node.
      for (const { project, file, source } of tsPrograms) {
        const js = ts.transpileModule(source, {
          compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
        }).outputText;
        const out = file.replace(/\.mts$/, '.run.mjs');
        fs.writeFileSync(path.join(project, out), js);
        const r = run(process.execPath, [out], project, 120_000);
        expect(r.status, `${file}:\n${r.out}`).toBe(0);
      }
      expect(tsPrograms.length, 'TypeScript programs run').toBeGreaterThan(0);
    },
  );
});

/** The siblings whose `/internal` subpath a package's published source imports (tests aside). */
function internalImports(dir: string, self: string): string[] {
  const found = new Set<string>();
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const f = path.join(d, e.name);
      if (e.isDirectory()) walk(f);
      else if (/\.[cm]?ts$/.test(e.name) && !/\.test\.ts$/.test(e.name)) {
        const re = /['"](@tspaxos\/[^/'"]+)\/internal['"]/g;
        for (const [, dep] of fs.readFileSync(f, 'utf8').matchAll(re))
          if (dep !== self) found.add(dep!);
      }
    }
  };
  if (fs.existsSync(path.join(dir, 'src'))) walk(path.join(dir, 'src'));
  return [...found].sort();
}

/**
 * What is wrong with a package's ranges on its siblings: a sibling reached through `/internal`
 * (no promise kept across versions) must be pinned to its exact version, any other one declared
 * at `^version` (`*` made npm look in the registry).
 */
function rangeProblems(m: Manifest, viaInternal: string[]): string[] {
  return internal(m).flatMap((dep) => {
    const version = manifests.get(dep)!.manifest.version;
    const want = viaInternal.includes(dep) ? version : `^${version}`;
    const got = m.dependencies![dep];
    return got === want ? [] : [`${m.name} → ${dep}: ${got}, want ${want}`];
  });
}

/**
 * Whether a version satisfies an `engines` range, for the forms npm packages use (`>=20`,
 * `^20.19.0 || >=22.12.0`, `20.x`, `>= 10`, `*`); any other form throws, so none passes unread.
 */
function admits(range: string, version: [number, number, number]): boolean {
  const cmp = (a: number[], b: number[]) => a[0]! - b[0]! || a[1]! - b[1]! || a[2]! - b[2]!;
  const one = (c: string): boolean => {
    if (c === '*' || c === 'x') return true;
    const m = /^(>=|<=|>|<|\^|~|=)?(\d+)(?:\.(\d+|x))?(?:\.(\d+|x))?$/.exec(c);
    if (m === null) throw new Error(`engines range not understood: ${range}`);
    const [major, minor, patch] = [m[2], m[3], m[4]].map((p) =>
      p === undefined || p === 'x' ? undefined : Number(p),
    );
    const low = [major!, minor ?? 0, patch ?? 0];
    const d = cmp(version, low);
    const sameMajor = version[0] === major;
    const sameMinor = minor === undefined || version[1] === minor;
    switch (m[1]) {
      case '>=':
        return d >= 0;
      case '>':
        return d > 0;
      case '<=':
        return d <= 0;
      case '<':
        return d < 0;
      case '^':
        return d >= 0 && sameMajor;
      case '~':
        return d >= 0 && sameMajor && sameMinor;
      default:
        return sameMajor && sameMinor && (patch === undefined || version[2] === patch);
    }
  };
  return range.split('||').some((clause) =>
    clause
      .trim()
      .replace(/(>=|<=|>|<|\^|~|=)\s+/g, '$1')
      .split(/\s+/)
      .every(one),
  );
}

describe('dependency ranges and engines (no packing)', () => {
  it('a sibling imported through /internal is pinned exactly, every other sibling at ^version', () => {
    const pinned: string[] = [];
    for (const { dir, manifest: m } of packages) {
      const viaInternal = internalImports(dir, m.name);
      pinned.push(...viaInternal.map((dep) => `${m.name} → ${dep}`));
      expect(rangeProblems(m, viaInternal), m.name).toEqual([]);
    }
    // The server and the simulator reach into @tspaxos/paxos/internal today; the scan sees them.
    expect(pinned).toEqual(['@tspaxos/node → @tspaxos/paxos', '@tspaxos/sim → @tspaxos/paxos']);
    // The check itself: the server at a range on what it imports through /internal is caught.
    const server = manifests.get('@tspaxos/node')!.manifest;
    const ranged = {
      ...server,
      dependencies: { ...server.dependencies, '@tspaxos/paxos': '^0.1.0' },
    };
    expect(rangeProblems(ranged, ['@tspaxos/paxos'])).toEqual([
      '@tspaxos/node → @tspaxos/paxos: ^0.1.0, want 0.1.0',
    ]);
  });

  it('every installed package admits this Node, and what users install admits the promised floor', () => {
    const root = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Manifest;
    const floorMatch = /^>=(\d+)\.(\d+)$/.exec(root.engines!.node!);
    expect(floorMatch, `root engines ${root.engines!.node}`).not.toBeNull();
    const floor: [number, number, number] = [Number(floorMatch![1]), Number(floorMatch![2]), 0];
    const here = process.versions.node.split('.').map(Number) as [number, number, number];
    const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { version?: string; dev?: boolean; engines?: { node?: string } }>;
    };
    const entries = Object.entries(lock.packages).filter(([, e]) => e.engines?.node !== undefined);
    expect(entries.length).toBeGreaterThan(50);
    // What `npm ci` warns about here (EBADENGINE): none.
    const badHere = entries.filter(([, e]) => !admits(e.engines!.node!, here));
    expect(badHere.map(([k, e]) => `${k}@${e.version}: ${e.engines!.node}`)).toEqual([]);
    // What users of the published packages install (runtime dependencies) runs on our floor.
    const badFloor = entries.filter(([, e]) => !e.dev && !admits(e.engines!.node!, floor));
    expect(badFloor.map(([k, e]) => `${k}@${e.version}: ${e.engines!.node}`)).toEqual([]);
    // The check itself: cookie@2.0.2 (Node >= 22, once pulled in through fastify) is refused.
    expect(admits('>=22', floor)).toBe(false);
    expect(admits('^20.19.0 || >=22.12.0', floor)).toBe(false);
    expect(admits('20 || >=22', floor)).toBe(true);
    expect(admits('>= 10.x', floor)).toBe(true);
    expect(() => admits('latest', floor)).toThrow(/not understood/);
  });
});
