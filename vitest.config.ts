import { defineConfig } from 'vitest/config';

// Root view of every package's tests (`npx vitest`); turbo runs each package's own `vitest run`
// so that unchanged packages are served from cache.
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*'],
  },
});
