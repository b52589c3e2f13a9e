// Files shipped beside the code (package.json `files`: public/). Resolved from a module directly
// under src/, which is also where the bundle sits (dist/), so the path holds from both.
export const DASHBOARD_FILE = new URL('../public/index.html', import.meta.url);
