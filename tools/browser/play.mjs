#!/usr/bin/env node
// Plays an HLS (hls.js) or DASH (dash.js) stream in Debian's Chromium, driven by
// playwright-core, and prints one JSON object saying what played.
//
//   node tools/browser/play.mjs --hls|--dash <dir> <entry> [--seconds N] [--level-seconds N]
//                               [--live] [--timeout N] [--chromium PATH]
//
// <dir> is served over HTTP on 127.0.0.1 (a random port), with the player libraries and the
// page, all from one origin. The page plays <entry> (relative to <dir>) muted; once it plays,
// every video quality level is selected in turn and must play --level-seconds (1) at that
// level, with the video's rendered height equal to the level's; then playback goes on until
// --seconds (4) have played in all (from the start again when the stream ends). Every error
// event (fatal or not), every HTTP answer other than 200/206 and every page exception is
// recorded. With --base URL the media are loaded from that origin (CORS) instead of <dir>.
// With --live the stream is a live one being written meanwhile: no level is
// selected (the player's own choice plays), nothing loops, playback goes on for --seconds
// from the live edge, and every stall is counted: `waiting` events of the video element after
// playback started (`waiting_events`) and the time the playhead stood still while playing
// (`stalled_seconds`, steps of 50 ms over 250 ms), and the live latency is sampled every
// 250 ms (`latency_p50`, `latency_p95`, seconds: the wall clock minus hls.js's playingDate,
// from the playlists' program date-times; dash.js's own live latency).
//
// Output (stdout): { ok, reason, kind, levels: [{index, height, width, codecs, bitrate,
// played, seconds}], heights_seen, source_buffers, played_seconds, errors, fatal, supported,
// browser, elapsed_s }. `source_buffers` are the MIME types the player gave MSE (the codecs
// it really used, from the playlist or the init segment). `supported` is MediaSource.isTypeSupported for a few codecs, so a caller can
// say why a codec is skipped. Exit status: 0 when it ran (even with ok=false); 2 when the
// harness itself failed (bad arguments, no Chromium, no node_modules, the browser broke),
// with the reason on stderr. Everything is bounded by --timeout (60 s).

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const USAGE =
  'usage: node tools/browser/play.mjs --hls|--dash <dir> <entry> [--seconds N] ' +
  '[--level-seconds N] [--live] [--base URL] [--timeout N] [--chromium PATH]';

// Codecs whose MediaSource support is reported: H.264 High 4.0, AV1 Main 8-bit 4.0, HEVC Main.
const PROBED_CODECS = ['avc1.640028', 'av01.0.04M.08', 'hvc1.1.6.L93.B0'];

const MIME = {
  '.m3u8': 'application/vnd.apple.mpegurl',
  '.mpd': 'application/dash+xml',
  '.mp4': 'video/mp4',
  '.m4v': 'video/mp4',
  '.m4a': 'audio/mp4',
  '.m4s': 'video/iso.segment',
  '.cmfv': 'video/mp4',
  '.cmfa': 'audio/mp4',
  '.ts': 'video/mp2t',
  '.aac': 'audio/aac',
  '.vtt': 'text/vtt',
  '.js': 'text/javascript',
  '.html': 'text/html; charset=utf-8',
};

const LIBS = {
  hls: path.join(HERE, 'node_modules/hls.js/dist/hls.min.js'),
  dash: path.join(HERE, 'node_modules/dashjs/dist/modern/umd/dash.all.min.js'),
};

class HarnessError extends Error {}

function parseArgs(argv) {
  const o = { kind: null, dir: null, entry: null, seconds: 4, levelSeconds: 1, timeout: 60, live: false,
    chromium: process.env.CHROMIUM || '/usr/bin/chromium' };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new HarnessError(`${a} needs a positive number\n${USAGE}`);
      return v;
    };
    if (a === '--hls' || a === '--dash') o.kind = a.slice(2);
    else if (a === '--seconds') o.seconds = num();
    else if (a === '--level-seconds') o.levelSeconds = num();
    else if (a === '--timeout') o.timeout = num();
    else if (a === '--live') o.live = true;
    else if (a === '--base') o.base = argv[++i];
    else if (a === '--chromium') o.chromium = argv[++i];
    else if (a.startsWith('--')) throw new HarnessError(`unknown option ${a}\n${USAGE}`);
    else rest.push(a);
  }
  if (!o.kind || rest.length !== 2) throw new HarnessError(USAGE);
  [o.dir, o.entry] = rest;
  o.dir = path.resolve(o.dir);
  if (!fs.statSync(o.dir, { throwIfNoEntry: false })?.isDirectory())
    throw new HarnessError(`${o.dir} is not a directory`);
  if (!o.base && !fs.existsSync(path.join(o.dir, o.entry)))
    throw new HarnessError(`${o.entry} is not in ${o.dir}`);
  if (!o.chromium || !fs.existsSync(o.chromium))
    throw new HarnessError(`${o.chromium} is missing: install the Debian package chromium (make deps does)`);
  if (!fs.existsSync(LIBS[o.kind]))
    throw new HarnessError(`${LIBS[o.kind]} is missing: run npm ci --prefix tools/browser (make deps does)`);
  return o;
}

function page(kind, entry, base) {
  const rel = entry.split('/').map(encodeURIComponent).join('/');
  const cfg = JSON.stringify({ kind, src: base ? base.replace(/\/$/, '') + '/' + rel : '/media/' + rel });
  return `<!doctype html><html><head><meta charset="utf-8"><title>streamvisor play</title>
<script src="/lib/${kind}.js"></script></head><body>
<video id="v" muted playsinline width="640" height="360"></video>
<script>
'use strict';
const cfg = ${cfg};
const v = document.getElementById('v');
v.muted = true;
const S = window.__sv = {
  started: false, fatal: false, errors: [], levels: [], rendered: null, played: 0,
  levelSeconds: {}, heights: [], select: null, sourceBuffers: [], waiting: 0, stalled: 0,
  latency: [], waitingAt: [],
};
// Live latency, glass to glass: the wall clock minus the program date-time of the frame on
// screen (hls.js playingDate; dash.js's own live latency), sampled while playing.
setInterval(() => {
  if (!S.started || v.paused) return;
  let l = null;
  if (window.hls && window.hls.playingDate) l = (Date.now() - window.hls.playingDate.getTime()) / 1000;
  else if (window.player && window.player.getCurrentLiveLatency) l = window.player.getCurrentLiveLatency();
  if (typeof l === 'number' && Number.isFinite(l) && l > 0) S.latency.push(l);
}, 250);
// Stalls once playing: the element's own 'waiting' events, and the playhead standing still.
// Each one's moment (seconds played) and the media buffered ahead of the playhead then.
v.addEventListener('waiting', () => {
  if (!S.started) return;
  S.waiting++;
  const b = v.buffered, t = v.currentTime;
  let ahead = 0;
  for (let i = 0; i < b.length; i++) if (b.start(i) <= t + 0.1 && b.end(i) > t) ahead = b.end(i) - t;
  S.waitingAt.push({ played: Number(S.played.toFixed(2)), ahead: Number(ahead.toFixed(3)) });
});
let still = 0;
// The types the player really gave MSE (the codecs it took from the playlist or the init
// segment), whatever the player.
for (const [proto, name] of [[MediaSource.prototype, 'addSourceBuffer'], [SourceBuffer.prototype, 'changeType']]) {
  const orig = proto[name];
  proto[name] = function (type) {
    if (!S.sourceBuffers.includes(type)) S.sourceBuffers.push(type);
    return orig.apply(this, arguments);
  };
}
function err(source, o, fatal) {
  S.errors.push(Object.assign({ source, fatal: !!fatal, at: Number(v.currentTime.toFixed(3)) }, o));
  if (fatal) S.fatal = true;
}
function play() {
  const p = v.play();
  if (p && p.catch) p.catch(e => err('video', { type: 'play', message: String(e) }, false));
}
v.addEventListener('error', () => err('video', {
  type: 'MediaError', code: v.error && v.error.code, message: v.error && v.error.message }, true));
// Time played, in all and per level: only forward steps of normal playback count (a seek is
// not playback); a level's seconds count only while the picture has that level's height.
let last = null;
setInterval(() => {
  const t = v.currentTime, h = v.videoHeight;
  if (h && !S.heights.includes(h)) S.heights.push(h);
  if (last !== null && !v.seeking) {
    const d = t - last;
    if (S.started && !v.paused && !v.ended && d === 0) {
      still += 0.05;
      if (still > 0.25) S.stalled += 0.05;
    } else still = 0;
    if (d > 0 && d < 1) {
      S.played += d;
      if (S.played > 0.2) S.started = true;
      const l = S.rendered;
      if (l !== null && S.levels[l] && (!S.levels[l].height || S.levels[l].height === h))
        S.levelSeconds[l] = (S.levelSeconds[l] || 0) + d;
    }
  }
  last = t;
}, 50);

if (cfg.kind === 'hls') {
  if (!Hls.isSupported()) err('hls', { type: 'unsupported', message: 'Hls.isSupported() is false' }, true);
  const hls = window.hls = new Hls({ enableWorker: true });
  hls.on(Hls.Events.ERROR, (_, d) => err('hls', {
    type: d.type, details: d.details,
    url: (d.frag && d.frag.url) || (d.context && d.context.url) || d.url,
    message: (d.error && d.error.message) || d.reason || (d.response && String(d.response.code)),
  }, d.fatal));
  hls.on(Hls.Events.MANIFEST_PARSED, (_, d) => {
    S.levels = hls.levels.map((l, i) => ({
      index: i, height: l.height || 0, width: l.width || 0,
      codecs: (l.attrs && l.attrs.CODECS) || [l.videoCodec, l.audioCodec].filter(Boolean).join(','),
      bitrate: l.bitrate,
    }));
    play();
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => { S.rendered = d.level; });
  // Immediate switch: flushes the buffer and loads the level at the playhead.
  S.select = i => { hls.currentLevel = i; };
  hls.attachMedia(v);
  hls.loadSource(cfg.src);
} else {
  const E = dashjs.MediaPlayer.events;
  const player = window.player = dashjs.MediaPlayer().create();
  player.updateSettings({ debug: { logLevel: dashjs.Debug.LOG_LEVEL_WARNING } });
  player.on(E.ERROR, e => err('dash', {
    type: 'error', code: e.error && e.error.code, message: e.error && e.error.message }, true));
  player.on(E.PLAYBACK_ERROR, e => err('dash', {
    type: 'playbackError', code: e.error && e.error.code, message: e.error && e.error.message }, true));
  player.on(E.STREAM_INITIALIZED, () => {
    S.levels = player.getRepresentationsByType('video').map((r, i) => ({
      index: i, id: r.id, height: r.height || 0, width: r.width || 0,
      codecs: r.codecs, bitrate: r.bandwidth,
    }));
    const cur = player.getCurrentRepresentationForType('video');
    if (cur && S.rendered === null) S.rendered = S.levels.findIndex(l => l.id === cur.id);
  });
  player.on(E.QUALITY_CHANGE_RENDERED, e => {
    if (e.mediaType === 'video' && e.newRepresentation)
      S.rendered = S.levels.findIndex(l => l.id === e.newRepresentation.id);
  });
  S.select = i => {
    player.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: false } } } });
    player.setRepresentationForTypeByIndex('video', i, true);
  };
  player.initialize(v, cfg.src, true);
}
</script></body></html>`;
}

// Serves the page at /, the player libraries at /lib/, <dir> at /media/; records every answer
// that is not 200/206.
function serve(o, httpErrors) {
  const html = page(o.kind, o.entry, o.base);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const fail = status => {
      httpErrors.push({ source: 'http', fatal: false, status, url: url.pathname });
      res.writeHead(status, { 'Content-Type': 'text/plain' });
      res.end(String(status));
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405);
    if (url.pathname === '/favicon.ico') { res.writeHead(204); return res.end(); }
    if (url.pathname === '/') {
      res.writeHead(200, { 'Content-Type': MIME['.html'], 'Cache-Control': 'no-store' });
      return res.end(req.method === 'HEAD' ? undefined : html);
    }
    let file;
    if (url.pathname === `/lib/${o.kind}.js`) file = LIBS[o.kind];
    else if (url.pathname.startsWith('/media/')) {
      let rel;
      try { rel = decodeURIComponent(url.pathname.slice('/media/'.length)); } catch { return fail(400); }
      file = path.resolve(o.dir, rel);
      if (!file.startsWith(o.dir + path.sep)) return fail(403);
    } else return fail(404);
    let st;
    try { st = fs.statSync(file); } catch { return fail(404); }
    if (!st.isFile()) return fail(404);
    const headers = {
      'Content-Type': MIME[path.extname(file).toLowerCase()] || 'application/octet-stream',
      'Cache-Control': 'no-store', 'Accept-Ranges': 'bytes',
    };
    let start = 0, end = st.size - 1, status = 200;
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range || '');
    if (range && (range[1] || range[2])) {
      if (range[1]) { start = Number(range[1]); if (range[2]) end = Math.min(Number(range[2]), end); }
      else start = Math.max(0, st.size - Number(range[2]));
      if (start > end) {
        httpErrors.push({ source: 'http', fatal: false, status: 416, url: url.pathname });
        res.writeHead(416, { 'Content-Range': `bytes */${st.size}` });
        return res.end();
      }
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${st.size}`;
    }
    headers['Content-Length'] = end - start + 1;
    res.writeHead(status, headers);
    if (req.method === 'HEAD' || st.size === 0) return res.end();
    fs.createReadStream(file, { start, end }).on('error', () => res.destroy()).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

// Rejects after `ms` with a HarnessError naming `what`.
function bounded(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new HarnessError(`${what} took over ${Math.round(ms / 1000)} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function run(o) {
  const t0 = Date.now();
  const deadline = t0 + o.timeout * 1000;
  const left = () => deadline - Date.now();
  let pw;
  try { pw = await import('playwright-core'); } catch (e) {
    throw new HarnessError(`playwright-core is missing: run npm ci --prefix tools/browser (make deps does): ${e.message}`);
  }
  const httpErrors = [];
  const server = await serve(o, httpErrors);
  const base = `http://127.0.0.1:${server.address().port}`;
  let browser;
  try {
    browser = await pw.chromium.launch({
      executablePath: o.chromium,
      headless: true,
      timeout: Math.max(1000, Math.min(30000, left())),
      args: [
        '--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--disable-gpu',
        '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--mute-audio',
        '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
      ],
    });
  } catch (e) {
    server.close();
    throw new HarnessError(`could not start ${o.chromium}: ${e.message}`);
  }
  const pageErrors = [];
  const out = {
    ok: false, reason: null, kind: o.kind, live: o.live, levels: [], heights_seen: [], source_buffers: [], played_seconds: 0,
    waiting_events: 0, waiting_at: [], stalled_seconds: 0,
    errors: [], fatal: false, supported: {}, browser: browser.version(), elapsed_s: 0,
  };
  try {
    const ctx = await browser.newContext();
    const pg = await ctx.newPage();
    pg.setDefaultTimeout(10000);
    pg.on('pageerror', e => pageErrors.push({ source: 'page', fatal: false, message: String(e && e.message || e) }));
    pg.on('crash', () => pageErrors.push({ source: 'page', fatal: true, message: 'the page crashed' }));
    await pg.goto(base + '/', { timeout: Math.max(1000, Math.min(15000, left())) });
    out.supported = await pg.evaluate(codecs => Object.fromEntries(codecs.map(c =>
      [c, window.MediaSource ? MediaSource.isTypeSupported(`video/mp4; codecs="${c}"`) : false])), PROBED_CODECS);

    const snap = () => bounded(pg.evaluate(() => {
      const S = window.__sv, v = document.getElementById('v');
      return {
        started: S.started, fatal: S.fatal, levels: S.levels, rendered: S.rendered,
        played: S.played, levelSeconds: S.levelSeconds, heights: S.heights, errors: S.errors,
        sourceBuffers: S.sourceBuffers, waiting: S.waiting, stalled: S.stalled, latency: S.latency,
        waitingAt: S.waitingAt,
        t: v.currentTime, duration: v.duration, ended: v.ended, paused: v.paused,
      };
    }), 10000, 'reading the page state');
    // Starts again from 0 when the stream has ended or is about to (VOD shorter than the walk).
    const loopIfEnding = async s => {
      if (s.ended || (Number.isFinite(s.duration) && s.duration - s.t < 1.5)) {
        await pg.evaluate(() => { const v = document.getElementById('v'); v.currentTime = 0; v.play().catch(() => {}); });
      }
    };
    // Polls until `pred` holds, a fatal error, `ms` or the deadline; returns the last state and
    // whether `pred` held.
    const waitFor = async (pred, ms, keepPlaying) => {
      const until = Math.min(deadline, Date.now() + ms);
      for (;;) {
        const s = await snap();
        if (pred(s)) return [s, true];
        if (s.fatal || Date.now() >= until) return [s, false];
        if (keepPlaying) await loopIfEnding(s);
        await sleep(100);
      }
    };

    let [s, started] = await waitFor(s => s.started, 20000, false);
    if (!started) out.reason = s.fatal ? 'a fatal error before playback started' : 'playback did not start within 20 s';
    const played = [];
    if (started && o.live) {
      let enough;
      [s, enough] = await waitFor(s => s.played >= o.seconds, Math.max(0, left()), false);
      if (!enough && !out.reason) out.reason = `played ${s.played.toFixed(2)} s of ${o.seconds} s live before the deadline`;
      if (s.rendered !== null && s.rendered >= 0) played[s.rendered] = true;
    } else if (started) {
      for (let i = 0; i < s.levels.length; i++) {
        await loopIfEnding(s);
        const before = s.levelSeconds[i] || 0;
        await pg.evaluate(i => window.__sv.select(i), i);
        let ok;
        [s, ok] = await waitFor(s => (s.levelSeconds[i] || 0) - before >= o.levelSeconds, 15000, true);
        played[i] = ok;
        if (!ok && !out.reason) {
          const l = s.levels[i];
          out.reason = s.fatal ? `a fatal error while playing level ${i}`
            : `level ${i} (${l.width}x${l.height} ${l.codecs}) did not play ${o.levelSeconds} s within 15 s`;
        }
        if (s.fatal) break;
      }
      if (!s.fatal) {
        let enough;
        [s, enough] = await waitFor(s => s.played >= o.seconds, Math.max(0, left()), true);
        if (!enough && !out.reason) out.reason = `played ${s.played.toFixed(2)} s of ${o.seconds} s before the deadline`;
      }
    }
    out.levels = s.levels.map((l, i) => ({
      index: l.index, height: l.height, width: l.width, codecs: l.codecs, bitrate: l.bitrate,
      played: !!played[i], seconds: Number((s.levelSeconds[i] || 0).toFixed(3)),
    }));
    if (started && s.levels.length === 0 && !out.reason) out.reason = 'the player offered no video level';
    out.heights_seen = s.heights;
    out.source_buffers = s.sourceBuffers;
    out.played_seconds = Number(s.played.toFixed(3));
    out.waiting_events = s.waiting;
    out.waiting_at = s.waitingAt;
    const sorted = [...(s.latency || [])].sort((a, b) => a - b);
    const at = q => sorted.length ? Number(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(3)) : null;
    out.latency_p50 = at(0.5);
    out.latency_p95 = at(0.95);
    out.stalled_seconds = Number(s.stalled.toFixed(2));
    out.errors = [...s.errors, ...pageErrors, ...httpErrors];
    out.fatal = s.fatal || pageErrors.some(e => e.fatal);
    if (out.fatal && !out.reason) out.reason = 'a fatal error';
    out.ok = !out.reason && !out.fatal;
  } finally {
    await bounded(browser.close(), 5000, 'closing the browser').catch(() => {});
    server.close();
    server.closeAllConnections?.();
  }
  out.elapsed_s = Number(((Date.now() - t0) / 1000).toFixed(2));
  return out;
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
  // The last resort: the harness is over its own deadline (a browser that no longer answers).
  setTimeout(() => {
    process.stderr.write(`play.mjs: still running ${opts.timeout + 15} s after the start: giving up\n`);
    process.exit(3);
  }, (opts.timeout + 15) * 1000).unref();
  const out = await run(opts);
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
} catch (e) {
  process.stderr.write(`play.mjs: ${e instanceof HarnessError ? e.message : (e && e.stack) || e}\n`);
  process.exit(2);
}
