// `@tspaxos/storage/sqlite`: the Node-only adapter (better-sqlite3, node:fs). The package's main
// entry stays free of Node built-ins so that cores importing it load in a browser (design.md §1).
export {
  SqliteLogStore,
  type SqliteLogStoreOptions,
  SCHEMA_VERSION,
  DATABASE_FILE,
  INSERT_ROWS_PER_STATEMENT,
} from './sqlite-log-store';
