// Child process of the crash test: writes records forever and prints the id of every sync write
// once it is acknowledged. The parent kills it with SIGKILL at a random moment.
import { SqliteLogStore } from '../dist/index.js';

const [dir, startText] = process.argv.slice(2);
const store = SqliteLogStore.open(dir);
let id = Number(startText);
const value = (i) => new TextEncoder().encode(`value-${i}-`.repeat(1 + (i % 40)));
for (;;) {
  const sync = id % 3 !== 0;
  const writes = [];
  // A few concurrent writers share fsyncs (group commit); each ack is printed when it resolves.
  for (let k = 0; k < 4; k++, id++) {
    const i = id;
    const record = {
      instanceId: i,
      promiseId: i,
      promiseNodeId: 1,
      acceptedId: i,
      acceptedNodeId: 1,
      value: value(i),
      checksum: i,
    };
    writes.push(
      store.put(0, record, { sync: sync || k > 0 }).then(() => process.stdout.write(`${i}\n`)),
    );
  }
  await Promise.all(writes);
}
