//! The cluster's atomic steps, as Lua scripts that Redis runs whole.
//!
//! Why scripts: a claim must read the key's current owner and install the new one in one step,
//! or two nodes opening the same key at the same moment could both believe they won (a
//! read-then-write). Redis runs a script without interleaving any other command, which makes
//! each of these a compare-and-set. Values in the sessions hash are `"<gen>|<json>"`, so the
//! scripts compare generations without decoding JSON.
//!
//! Layout (every key under the configured prefix `p`):
//! * `p:gen`: the generation counter: each claim gets the next number, cluster-wide;
//! * `p:sessions`: hash, session key → `"<gen>|<entry json>"`: the current owner of each key;
//! * `p:live`: hash, gen → `"<node>|<key>"`: every stream still running somewhere, superseded or
//!   not (a new owner waits for all older ones of its key, not only the one it replaced);
//! * `p:node:<id>`: a node's lease (expires unless renewed);
//! * `p:released` (channel): a gen whose stream has ended; `p:cmd:<id>` (channel): commands.

use redis::Script;

/// `KEYS`: gen counter, sessions, live. `ARGV`: session key, entry json, `<node>|<key>`.
/// Returns `{gen, previous value or ""}`.
pub(crate) fn claim() -> Script {
    Script::new(
        r"
local gen = redis.call('INCR', KEYS[1])
local old = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], gen .. '|' .. ARGV[2])
redis.call('HSET', KEYS[3], gen, ARGV[3])
return {gen, old or ''}
",
    )
}

/// `KEYS`: sessions, live, released channel. `ARGV`: session key, gen.
/// Ends a stream: its live record goes, and the key's owner too if it is still this gen.
pub(crate) fn release() -> Script {
    Script::new(
        r"
redis.call('HDEL', KEYS[2], ARGV[2])
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and string.sub(cur, 1, string.len(ARGV[2]) + 1) == ARGV[2] .. '|' then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[3], ARGV[2])
return 1
",
    )
}

/// `KEYS`: sessions, live. `ARGV`: session key, gen, entry json, `<node>|<key>`.
/// A node re-asserting a stream it runs (after a Redis restart, or a lease that lapsed during
/// an outage): `"ours"`, `"reinstated"` (the key had no owner) or `"other:<gen>"`.
pub(crate) fn reassert() -> Script {
    Script::new(
        r"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[3])
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
  return 'reinstated'
end
local g = string.match(cur, '^(%d+)|')
if g == ARGV[2] then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
  return 'ours'
end
return 'other:' .. (g or '0')
",
    )
}

/// `KEYS`: sessions, live. `ARGV`: the node lease key prefix (`p:node:`).
/// Drops the streams of nodes whose lease has expired, and owners without a live stream.
/// Returns how many keys were freed.
pub(crate) fn collect_garbage() -> Script {
    Script::new(
        r"
local live = redis.call('HGETALL', KEYS[2])
local alive = {}
local nodes = {}
for i = 1, #live, 2 do
  local node = string.match(live[i + 1], '^([^|]*)')
  if nodes[node] == nil then
    nodes[node] = redis.call('EXISTS', ARGV[1] .. node) == 1
  end
  if nodes[node] then
    alive[live[i]] = true
  else
    redis.call('HDEL', KEYS[2], live[i])
  end
end
local freed = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local g = string.match(all[i + 1], '^(%d+)|')
  if not (g and alive[g]) then
    redis.call('HDEL', KEYS[1], all[i])
    freed = freed + 1
  end
end
return freed
",
    )
}

/// `KEYS`: sessions. `ARGV`: session key, gen, entry json.
/// Rewrites the key's entry if it is still this gen's (the streamer's pid, known after launch).
pub(crate) fn update() -> Script {
    Script::new(
        r"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and string.sub(cur, 1, string.len(ARGV[2]) + 1) == ARGV[2] .. '|' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[3])
  return 1
end
return 0
",
    )
}
