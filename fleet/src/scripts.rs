//! The Lua scripts that change a job: each runs atomically in Redis, so a job's record and
//! its stream entry never disagree, and every change by a node is checked against the job's
//! fencing epoch (a node that lost the job changes nothing).

use std::sync::OnceLock;

use redis::Script;

/// Checks a job's pending entry is owned by `node` (XPENDING on the one entry).
const OWNER: &str = r"
local function owned(stream, group, entry, node)
  local p = redis.call('XPENDING', stream, group, entry, entry, 1)
  return #p > 0 and p[1][2] == node
end
local function final(state)
  return state == 'completed' or state == 'failed' or state == 'cancelled' or state == 'refused'
end
";

/// KEYS: job, stream, all. ARGV: id, kind, config, now_ms. 1, or 0 for a duplicate id.
const SUBMIT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local entry = redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'kind', ARGV[2], 'config', ARGV[3],
  'state', 'queued', 'node', '', 'attempts', 0, 'failures', 0, 'epoch', 0,
  'errors', '[]', 'entry', entry, 'submitted_ms', ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1
";

/// KEYS: job, stream. ARGV: group, entry, node, now_ms. `{outcome, epoch, previous
/// state, attempts}`; outcome `ok` (the node owns the job at this epoch), `gone`, `stale`,
/// `final` or `cancelled` (the entry is acknowledged), `lost` (another node claimed it).
const TAKE: &str = r"
local st = redis.call('HGET', KEYS[1], 'state')
local function ack() redis.call('XACK', KEYS[2], ARGV[1], ARGV[2]) end
if not st then ack() return {'gone'} end
if redis.call('HGET', KEYS[1], 'entry') ~= ARGV[2] then ack() return {'stale'} end
if final(st) then ack() return {'final'} end
if not owned(KEYS[2], ARGV[1], ARGV[2], ARGV[3]) then return {'lost'} end
if redis.call('HGET', KEYS[1], 'cancel') == '1' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_ms', ARGV[4])
  ack() return {'cancelled'}
end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'node', ARGV[3], 'state', 'taken', 'taken_ms', ARGV[4])
return {'ok', tostring(epoch), st, tostring(attempts)}
";

/// KEYS: job, stream. ARGV: group, entry, node, id. Puts a job the node read but cannot run
/// now back at the end of the stream (a new entry, the old one acknowledged): 1, or 0 when
/// the node no longer owns the entry.
const REQUEUE: &str = r"
if not owned(KEYS[2], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
local e = redis.call('XADD', KEYS[2], '*', 'id', ARGV[4])
redis.call('HSET', KEYS[1], 'entry', e, 'state', 'queued')
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
return 1
";

/// KEYS: job, stream. ARGV: group, entry, node, refusal JSON, now_ms. Records a refusal
/// (final) and acknowledges the entry: 1, or 0 when the node no longer owns it.
const REFUSE: &str = r"
if not owned(KEYS[2], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'state', 'refused', 'error', ARGV[4], 'node', ARGV[3],
  'finished_ms', ARGV[5])
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
return 1
";

/// KEYS: job, stream. ARGV: group, entry, node, epoch. The owner's lease renewal: resets
/// the entry's idle time (XCLAIM to itself, JUSTID: no delivery counted) while the node
/// still owns it at this epoch. 1, or 0 when the lease is lost.
const RENEW: &str = r"
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[4] then return 0 end
if not owned(KEYS[2], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
redis.call('XCLAIM', KEYS[2], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
return 1
";

/// KEYS: job. ARGV: node, epoch, state. Records a running job's stream state while the
/// node owns it.
const NOTE: &str = r"
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[2] or redis.call('HGET', KEYS[1], 'node') ~= ARGV[1] then return 0 end
if final(redis.call('HGET', KEYS[1], 'state')) then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[3])
return 1
";

/// KEYS: job, stream, dead. ARGV: group, entry, node, epoch, outcome, detail JSON, now_ms,
/// max failures, id. Ends the owner's run: `completed` and `cancelled` are final (the
/// entry acknowledged, the report recorded); `failed` records the error and requeues the
/// job, or moves it to the dead-letter stream on its last allowed failure; `handback`
/// requeues it (a draining node). Returns what it did, or `fenced` when the node is no
/// longer the job's owner at this epoch (nothing changed).
const FINISH: &str = r"
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[4] or redis.call('HGET', KEYS[1], 'node') ~= ARGV[3] then return 'fenced' end
if final(redis.call('HGET', KEYS[1], 'state')) then return 'fenced' end
local function ack() redis.call('XACK', KEYS[2], ARGV[1], ARGV[2]) end
local o = ARGV[5]
if o == 'completed' or o == 'cancelled' then
  redis.call('HSET', KEYS[1], 'state', o, 'report', ARGV[6], 'finished_ms', ARGV[7])
  redis.call('HINCRBY', KEYS[1], o, 1)
  ack() return o
end
if o == 'failed' then
  local errs = cjson.decode(redis.call('HGET', KEYS[1], 'errors') or '[]')
  table.insert(errs, cjson.decode(ARGV[6]))
  local encoded = cjson.encode(errs)
  redis.call('HSET', KEYS[1], 'errors', encoded)
  local f = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  if f >= tonumber(ARGV[8]) then
    redis.call('HSET', KEYS[1], 'state', 'failed', 'finished_ms', ARGV[7])
    redis.call('XADD', KEYS[3], '*', 'id', ARGV[9], 'errors', encoded)
    ack() return 'dead'
  end
end
local e = redis.call('XADD', KEYS[2], '*', 'id', ARGV[9])
redis.call('HSET', KEYS[1], 'entry', e, 'state', 'queued')
ack()
return 'requeued'
";

/// One script, compiled (hashed) once per process.
fn script(cell: &'static OnceLock<Script>, body: &str, with_owner: bool) -> &'static Script {
    cell.get_or_init(|| {
        if with_owner {
            Script::new(&format!("{OWNER}\n{body}"))
        } else {
            Script::new(body)
        }
    })
}

macro_rules! scripts {
    ($($(#[$doc:meta])* $name:ident = $body:ident, $owner:expr;)*) => {$(
        $(#[$doc])*
        pub(crate) fn $name() -> &'static Script {
            static CELL: OnceLock<Script> = OnceLock::new();
            script(&CELL, $body, $owner)
        }
    )*};
}

scripts! {
    /// See [`SUBMIT`].
    submit = SUBMIT, false;
    /// See [`TAKE`].
    take = TAKE, true;
    /// See [`REQUEUE`].
    requeue = REQUEUE, true;
    /// See [`REFUSE`].
    refuse = REFUSE, true;
    /// See [`RENEW`].
    renew = RENEW, true;
    /// See [`NOTE`].
    note = NOTE, true;
    /// See [`FINISH`].
    finish = FINISH, true;
}
