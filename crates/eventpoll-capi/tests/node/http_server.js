// A plain Node.js HTTP server for scripts/capi-servers.sh, which measures its CPU per
// request natively and under LD_PRELOAD=libeventpoll.so. It listens on loopback at a port
// the kernel chooses, writes that port to the file given as its argument (whole, by a
// rename, so a reader never sees half of it), answers every request with the same 1 KiB
// body, and closes on SIGTERM. It exits by itself after LIFETIME_MS (default 120,000 ms)
// so that a lost run cannot outlive its script.
'use strict';

const fs = require('node:fs');
const http = require('node:http');

const portFile = process.argv[2];
const body = Buffer.alloc(1024, 'e');
const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length });
    res.end(body);
});
server.listen(0, '127.0.0.1', () => {
    fs.writeFileSync(`${portFile}.tmp`, String(server.address().port));
    fs.renameSync(`${portFile}.tmp`, portFile);
});
const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
setTimeout(stop, Number(process.env.LIFETIME_MS || 120000)).unref();
