// Drives a MemoryNetwork for in-process benchmarks: every turn of the event loop advances its
// virtual time by a second and delivers what is due. Returns the function that stops it.
export function pumpMemoryNetwork(net) {
  let virtualMs = 0;
  let pumping = true;
  const pump = () => {
    if (!pumping) return;
    virtualMs += 1000;
    net.setTime(virtualMs);
    net.deliverDue(virtualMs);
    setImmediate(pump);
  };
  pump();
  return () => {
    pumping = false;
  };
}
