// The auth file's format, the roles each route needs, and the token lookup's constant-time shape.
import { describe, expect, it } from 'vitest';
import { AuthTokens, requiredRole } from './auth';

const FILE = `# tokens
aaaaaaaaaaaaaaaa-read   read
bbbbbbbbbbbbbbbb-write  write

cccccccccccccccc-admin\tadmin
`;

describe('AuthTokens', () => {
  it('reads one token and role per line, comments and blank lines aside', () => {
    const t = AuthTokens.parse(FILE, 'f');
    expect(t.size).toBe(3);
    expect(t.lookup('aaaaaaaaaaaaaaaa-read')).toBe('read');
    expect(t.lookup('bbbbbbbbbbbbbbbb-write')).toBe('write');
    expect(t.lookup('cccccccccccccccc-admin')).toBe('admin');
    expect(t.lookup('cccccccccccccccc-admiN')).toBeUndefined();
    expect(t.lookup('')).toBeUndefined();
    expect(t.ownToken).toBe('aaaaaaaaaaaaaaaa-read');
  });

  it.each([
    ['tok read extra\n', /f:1: expected 'token role', got 3 fields/],
    ['aaaaaaaaaaaaaaaa owner\n', /f:1: role must be read, write or admin, got 'owner'/],
    ['short read\n', /f:1: a token is at least 16/],
    ['aaaaaaaaaaaaaaaa read\naaaaaaaaaaaaaaaa admin\n', /f:2: the token is given twice/],
    ['# nothing\n\n', /f: no tokens/],
  ])('refuses %j', (text, message) => {
    expect(() => AuthTokens.parse(text, 'f')).toThrow(message);
  });

  it('compares a token with every entry, wherever it matches or differs', () => {
    // A lookup that stopped at the first match, or compared strings byte by byte, would take
    // longer for later entries or longer common prefixes: each lookup here makes exactly one
    // fixed-size digest comparison per entry (timingSafeEqual on SHA-256 digests).
    const t = AuthTokens.parse(FILE, 'f');
    for (const token of [
      'aaaaaaaaaaaaaaaa-read',
      'cccccccccccccccc-admin',
      'cccccccccccccccc-admiX',
      'x',
      'y'.repeat(10_000),
    ]) {
      const before = t.comparisons;
      t.lookup(token);
      expect(t.comparisons - before, token.slice(0, 20)).toBe(3);
    }
  });
});

describe('requiredRole', () => {
  it.each([
    ['GET', '/kv/a', false, 'read'],
    ['HEAD', '/kv/a', false, 'read'],
    ['GET', '/kv', false, 'read'],
    ['PUT', '/kv/a', false, 'write'],
    ['DELETE', '/kv/a', false, 'write'],
    ['POST', '/admin/checkpoint', false, 'admin'],
    ['GET', '/admin/members', false, 'admin'],
    ['GET', '/metrics', false, undefined],
    ['GET', '/readyz', false, undefined],
    ['GET', '/metrics', true, 'read'],
    ['GET', '/status', true, 'read'],
    ['GET', '/livez', true, 'read'],
    ['GET', '/', true, undefined],
    ['OPTIONS', '/kv/a', false, undefined],
  ] as const)('%s %s (--auth-metrics %s): %s', (method, path, protect, role) => {
    expect(requiredRole(method, path, protect)).toBe(role);
  });
});
