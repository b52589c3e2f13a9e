import { describeNetworkContract } from './network.contract';
import { MemoryNetwork, SeededRng } from './index';
import { TcpNetwork } from './tcp';

describeNetworkContract('MemoryNetwork', async () => {
  const net = new MemoryNetwork({ rng: new SeededRng(3) });
  net.setDefaultLink({ delayMs: [1, 5] });
  return {
    a: net.endpoint(1),
    b: net.endpoint(2),
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
    settle: () => new Promise((r) => setTimeout(r, 200)),
    cleanup: async () => {
      await a.close();
      await b.close();
    },
  };
});
