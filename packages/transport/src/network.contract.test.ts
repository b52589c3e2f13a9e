import { describeNetworkContract } from './network.contract';
import { SeededRandomSource } from '@tspaxos/core';
import { MemoryNetwork } from './index';
import { TcpNetwork } from './tcp';

describeNetworkContract('MemoryNetwork', async () => {
  const net = new MemoryNetwork({ rng: new SeededRandomSource(3) });
  net.setDefaultLink({ delayMs: [1, 5] });
  return {
    a: net.endpoint(1),
    b: net.endpoint(2),
    deliver: async (done) => {
      for (let at = net.nextDeliveryAt(); !done() && at !== undefined; at = net.nextDeliveryAt())
        net.deliverNext(at);
      if (!done()) throw new Error('nothing left in flight, and the condition does not hold');
    },
    settle: async () => {
      for (let at = net.nextDeliveryAt(); at !== undefined; at = net.nextDeliveryAt())
        net.deliverNext(at);
    },
    cleanup: async () => {},
  };
});

describeNetworkContract('TcpNetwork', async () => {
  const listen = { host: '127.0.0.1', port: 0 };
  const b = new TcpNetwork({ nodeId: 2, clusterId: 'contract', listen });
  const addrB = await b.start();
  const a = new TcpNetwork({ nodeId: 1, clusterId: 'contract', listen, peers: { 2: addrB } });
  const addrA = await a.start();
  b.addPeer(1, addrA);
  return {
    a,
    b,
    deliver: async (done) => {
      const t0 = performance.now();
      while (!done()) {
        if (performance.now() - t0 > 10_000) throw new Error('not delivered within 10 s');
        await new Promise((r) => setTimeout(r, 2));
      }
    },
    settle: () => new Promise((r) => setTimeout(r, 50)),
    cleanup: async () => {
      await a.close();
      await b.close();
    },
  };
});
