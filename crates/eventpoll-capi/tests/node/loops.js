// Node.js's event loop (libuv) through every kind of handle it has, printing a transcript
// that is the same on every run of a correct loop: no ports, pids, times or orders that
// the loop does not promise. scripts/capi-node.sh runs it natively and under
// LD_PRELOAD=libeventpoll.so and compares the transcripts line by line.
//
// Each step has a deadline (STEP_MS): a step whose callbacks never come prints
// "<step>: timeout" and the run goes on with the next step, so one lost wakeup shows as
// one line of difference, not as a hung run. Network: loopback only.
'use strict';

const assert = require('node:assert');
const childProcess = require('node:child_process');
const crypto = require('node:crypto');
const dgram = require('node:dgram');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');

const STEP_MS = Number(process.env.STEP_MS || 10000);

if (!isMainThread) {
  // A worker: sum the numbers it was given, wait on a timer of its own, answer.
  let sum = 0n;
  for (const n of workerData.numbers) sum += BigInt(n);
  setTimeout(() => parentPort.postMessage({ id: workerData.id, sum: sum.toString() }), 5);
  parentPort.on('message', (m) => {
    if (m === 'ping') parentPort.postMessage('pong ' + workerData.id);
    if (m === 'bye') parentPort.close();
  });
  return;
}

const out = [];
function say(line) {
  out.push(line);
  process.stdout.write(line + '\n');
}

function withDeadline(name, body) {
  return new Promise((resolve) => {
    let done = false;
    const timer = setTimeout(() => {
      if (!done) {
        done = true;
        say(`${name}: timeout`);
        resolve();
      }
    }, STEP_MS);
    Promise.resolve()
      .then(body)
      .then(
        (lines) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          for (const l of lines) say(`${name}: ${l}`);
        },
        (err) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          say(`${name}: error ${err.code || err.message}`);
        })
      .finally(resolve);
  });
}

// Timers, immediates, ticks and microtasks: the orders Node documents.
function timers() {
  return new Promise((resolve) => {
    const seen = [];
    const io = [];
    setTimeout(() => seen.push('timeout 30'), 30);
    setTimeout(() => seen.push('timeout 10'), 10);
    setTimeout(() => seen.push('timeout 20'), 20);
    const cancelled = setTimeout(() => seen.push('cancelled'), 15);
    clearTimeout(cancelled);
    let ticks = 0;
    const iv = setInterval(() => {
      ticks += 1;
      if (ticks === 5) clearInterval(iv);
    }, 3);
    // Inside an I/O callback, setImmediate always runs before a 0 ms timer.
    fs.stat(__filename, () => {
      setTimeout(() => io.push('io: timeout 0'), 0);
      setImmediate(() => io.push('io: immediate'));
      process.nextTick(() => io.push('io: nextTick'));
      Promise.resolve().then(() => io.push('io: microtask'));
    });
    setTimeout(() => {
      seen.push(`interval ran ${ticks} times`);
      // The I/O callback's own order; when it ran among the timers depends on the pool.
      resolve([seen.join(', '), 'in an I/O callback: ' + io.map((x) => x.slice(4)).join(', ')]);
    }, 150);
  });
}

// The thread pool: fs calls complete on other threads and wake the loop (uv_async_send).
async function files(dir) {
  const lines = [];
  const file = path.join(dir, 'data.bin');
  const data = crypto.createHash('sha256').update('eventpoll').digest();
  const big = Buffer.alloc(1 << 20);
  for (let i = 0; i < big.length; i += 32) data.copy(big, i);
  await fs.promises.writeFile(file, big);
  const back = await fs.promises.readFile(file);
  lines.push(`promises read ${back.length} bytes, equal ${back.equals(big)}`);
  const viaCallbacks = await new Promise((resolve, reject) =>
    fs.readFile(file, (err, buf) => (err ? reject(err) : resolve(buf))));
  lines.push(`callback read equal ${viaCallbacks.equals(big)}`);
  // Many at once: the pool's 4 threads all wake the loop.
  const names = Array.from({ length: 64 }, (_, i) => path.join(dir, `f${i}`));
  await Promise.all(names.map((n, i) => fs.promises.writeFile(n, String(i))));
  const texts = await Promise.all(names.map((n) => fs.promises.readFile(n, 'utf8')));
  lines.push(`64 files, sum ${texts.reduce((a, t) => a + Number(t), 0)}`);
  // A stream, piped through the loop in chunks.
  const hash = crypto.createHash('sha256');
  await new Promise((resolve, reject) =>
    fs.createReadStream(file, { highWaterMark: 4096 }).on('data', (c) => hash.update(c))
      .on('end', resolve).on('error', reject));
  lines.push(`stream sha256 ${hash.digest('hex').slice(0, 16)}`);
  // fs.watch (inotify): one event for a file created in the watched folder.
  const watched = path.join(dir, 'watched');
  fs.mkdirSync(watched);
  const event = await new Promise((resolve) => {
    const w = fs.watch(watched, (type, name) => {
      w.close();
      resolve(`${type} ${name}`);
    });
    setTimeout(() => fs.writeFileSync(path.join(watched, 'new.txt'), 'x'), 20);
  });
  lines.push(`watch ${event}`);
  return lines;
}

// An HTTP server and a client on loopback: concurrent requests on kept-alive sockets.
async function httpRoundTrips() {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      res.setHeader('content-type', 'application/octet-stream');
      res.end(crypto.createHash('sha256').update(body).digest('hex'));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const one = (i) => new Promise((resolve, reject) => {
    const body = Buffer.alloc(1000 + 997 * i, i % 251);
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: `/${i}`, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve(text === crypto.createHash('sha256').update(body).digest('hex')));
    });
    req.on('error', reject);
    req.end(body);
  });
  const results = await Promise.all(Array.from({ length: 100 }, (_, i) => one(i)));
  agent.destroy();
  await new Promise((resolve) => server.close(resolve));
  return [`100 requests, ${results.filter(Boolean).length} answers right`];
}

// Raw TCP: a 4 MiB echo with back-pressure, then a half-close.
async function tcpEcho() {
  const server = net.createServer((sock) => sock.pipe(sock));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const payload = crypto.randomBytes(4 << 20);
  const digest = crypto.createHash('sha256').update(payload).digest('hex');
  const echoed = await new Promise((resolve, reject) => {
    const c = net.connect(server.address().port, '127.0.0.1');
    const hash = crypto.createHash('sha256');
    let n = 0;
    c.on('data', (d) => { n += d.length; hash.update(d); });
    c.on('end', () => resolve({ n, same: hash.digest('hex') === digest }));
    c.on('error', reject);
    c.end(payload);
  });
  await new Promise((resolve) => server.close(resolve));
  return [`echoed ${echoed.n} bytes, same ${echoed.same}`];
}

// UDP on loopback: 20 datagrams there and back.
async function udp() {
  const a = dgram.createSocket('udp4');
  const b = dgram.createSocket('udp4');
  await Promise.all([a, b].map((s) => new Promise((r) => s.bind(0, '127.0.0.1', r))));
  b.on('message', (msg, rinfo) => b.send(msg, rinfo.port, rinfo.address));
  const got = await new Promise((resolve) => {
    const seen = new Set();
    a.on('message', (msg) => {
      seen.add(msg.toString());
      if (seen.size === 20) resolve(seen.size);
    });
    for (let i = 0; i < 20; i++) a.send(`d${i}`, b.address().port, '127.0.0.1');
  });
  a.close();
  b.close();
  return [`${got} datagrams echoed`];
}

// Worker threads: messages cross threads both ways (each is an async wakeup of a loop).
async function workers() {
  const ids = [0, 1, 2, 3];
  const results = await Promise.all(ids.map((id) => new Promise((resolve, reject) => {
    const numbers = Array.from({ length: 1000 }, (_, i) => i * (id + 1));
    const w = new Worker(__filename, { workerData: { id, numbers } });
    const got = [];
    w.on('message', (m) => {
      got.push(typeof m === 'string' ? m : `sum ${m.sum}`);
      if (got.length === 1) w.postMessage('ping');
      if (got.length === 2) w.postMessage('bye');
    });
    w.on('error', reject);
    w.on('exit', (code) => resolve(`worker ${id}: ${got.join(', ')}, exit ${code}`));
  })));
  return results;
}

// Child processes: a pipe both ways, an exit code, a signal, and exec through a shell.
async function children() {
  const lines = [];
  const echo = await new Promise((resolve, reject) => {
    const c = childProcess.spawn(process.execPath, ['-e',
      'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{process.stdout.write(s.toUpperCase());process.exit(3)})']);
    let text = '';
    c.stdout.on('data', (d) => (text += d));
    c.on('error', reject);
    c.on('close', (code) => resolve(`stdin->stdout ${JSON.stringify(text)}, exit ${code}`));
    c.stdin.end('through the pipe');
  });
  lines.push(echo);
  const killed = await new Promise((resolve) => {
    const c = childProcess.spawn(process.execPath, ['-e', 'setInterval(()=>{},1000); process.stdout.write("up")']);
    c.stdout.once('data', () => c.kill('SIGTERM'));
    c.on('close', (code, signal) => resolve(`killed: code ${code}, signal ${signal}`));
  });
  lines.push(killed);
  const shell = await new Promise((resolve) => childProcess.exec('echo one; echo two >&2; exit 4',
    (err, stdout, stderr) => resolve(`exec: ${JSON.stringify(stdout)} ${JSON.stringify(stderr)} code ${err && err.code}`)));
  lines.push(shell);
  return lines;
}

// A signal sent to ourselves (libuv's signal pipe).
function signals() {
  return new Promise((resolve) => {
    process.once('SIGUSR2', () => resolve(['SIGUSR2 handled']));
    process.kill(process.pid, 'SIGUSR2');
  });
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eventpoll-node-'));
  try {
    await withDeadline('timers', timers);
    await withDeadline('fs', () => files(dir));
    await withDeadline('http', httpRoundTrips);
    await withDeadline('tcp', tcpEcho);
    await withDeadline('udp', udp);
    await withDeadline('workers', workers);
    await withDeadline('child_process', children);
    await withDeadline('signals', signals);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(out.length > 0);
  say('end');
  // Handles a timed-out step left open must not keep the process alive.
  process.exit(0);
}

main();
