// `@tspaxos/transport/tcp`: the Node-only adapter (node:net, node:tls). The package's main entry
// stays free of Node built-ins so that cores importing it load in a browser (design.md §1).
export {
  TcpNetwork,
  type TcpNetworkOptions,
  type TcpCounters,
  type PeerAddress,
  type TlsOptions,
} from './tcp-network';
