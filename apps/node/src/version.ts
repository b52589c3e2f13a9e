// The package's name and version (GET /version, `tspaxos --version`), read from package.json,
// which sits one directory above both src/ and the bundle in dist/ (as assets.ts resolves).
import * as fs from 'node:fs';

const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  name: string;
  version: string;
};

export const VERSION = { name: pkg.name, version: pkg.version };
