//! The Lua scripts behind the Redis backend's atomic operations. Each script touches only keys
//! passed in `KEYS` that share one hash tag (see the key layout in [`super`]), so it runs on a
//! single Redis Cluster node.
//!
//! Conventions: times are whole Unix seconds (`exp`, `now`) — the same resolution as the
//! embedded store — and `PXAT` values are Unix milliseconds computed by the caller (never in the
//! past, so a logically expired record lingers at most a second and reads check `exp` anyway).
//! Replies are `{status, record-or-false}` so they decode as `(i64, Option<String>)`.

use std::sync::LazyLock;

use ::redis::Script;

/// `take_code`. KEYS: code. ARGV: now. → 0 not found, 1 redeemed, 2 already used.
pub(super) static TAKE_CODE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('HMGET', KEYS[1], 'rec', 'exp', 'used')
if not v[1] or tonumber(v[2]) <= tonumber(ARGV[1]) then return {0, false} end
if v[3] == '1' then return {2, v[1]} end
redis.call('HSET', KEYS[1], 'used', '1')
return {1, v[1]}
",
    )
});

/// `redeem_code` (after the `jti` step). KEYS: code, family revocation, [new refresh token].
/// ARGV: now, revoke-until (s), revoke-until PXAT (ms), refresh record, refresh exp (s),
/// refresh PXAT (ms). → 0 not found, 1 redeemed (refresh stored), 2 already used (family
/// revoked, never shortened).
pub(super) static REDEEM_CODE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('HMGET', KEYS[1], 'rec', 'exp', 'used')
if not v[1] or tonumber(v[2]) <= tonumber(ARGV[1]) then return {0, false} end
if v[3] == '1' then
  local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tonumber(ARGV[2]) > cur then
    redis.call('SET', KEYS[2], ARGV[2], 'PXAT', ARGV[3])
  end
  return {2, v[1]}
end
redis.call('HSET', KEYS[1], 'used', '1')
if KEYS[3] then
  redis.call('HSET', KEYS[3], 'rec', ARGV[4], 'exp', ARGV[5], 'spent', '0')
  redis.call('PEXPIREAT', KEYS[3], ARGV[6])
end
return {1, v[1]}
",
    )
});

/// `record_jti` and the first step of `redeem_code`. KEYS: jti. ARGV: now, exp (s), PXAT (ms).
/// → 1 recorded, 0 already recorded and live.
pub(super) static RECORD_JTI: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
return 1
",
    )
});

/// `rotate_refresh`. KEYS: old token, new token, family revocation. ARGV: now, new record,
/// new exp (s), new PXAT (ms), PXAT floor (ms, "now + 1 s"). → 0 not found, 1 rotated,
/// 2 reused (family revoked until the later of the two expiries), 3 family revoked.
pub(super) static ROTATE_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = tonumber(ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'rec', 'exp', 'spent')
if not v[1] or tonumber(v[2]) <= now then return {0, false} end
local r = redis.call('GET', KEYS[3])
if r and tonumber(r) > now then return {3, false} end
if v[3] == '1' then
  local u = math.max(tonumber(v[2]), tonumber(ARGV[3]))
  local cur = tonumber(r or '0')
  if u > cur then
    local at = math.max(u * 1000, tonumber(ARGV[5]))
    redis.call('SET', KEYS[3], string.format('%.0f', u), 'PXAT', string.format('%.0f', at))
  end
  return {2, false}
end
redis.call('HSET', KEYS[1], 'spent', '1')
redis.call('HSET', KEYS[2], 'rec', ARGV[2], 'exp', ARGV[3], 'spent', '0')
redis.call('PEXPIREAT', KEYS[2], ARGV[4])
return {1, v[1]}
",
    )
});

/// `spend_refresh`. KEYS: token, family revocation. ARGV: now (s), revoke until (s), PXAT floor
/// (ms). → 0 unknown, 1 active, 2 reused (family revoked now), 3 family revoked before.
pub(super) static SPEND_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = tonumber(ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'exp', 'spent')
if not v[1] or tonumber(v[1]) <= now then return 0 end
local r = redis.call('GET', KEYS[2])
if r and tonumber(r) > now then return 3 end
if v[2] ~= '1' then return 1 end
local u = math.max(tonumber(v[1]), tonumber(ARGV[2]))
local cur = tonumber(r or '0')
if u > cur then
  local at = math.max(u * 1000, tonumber(ARGV[3]))
  redis.call('SET', KEYS[2], string.format('%.0f', u), 'PXAT', string.format('%.0f', at))
end
return 2
",
    )
});

/// `revoke_family`. KEYS: family revocation. ARGV: until (s), PXAT (ms). Never shortens.
pub(super) static REVOKE_FAMILY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
end
return 1
",
    )
});

/// `init_signing_key`. KEYS: key list. ARGV: candidate JSON. → every key, oldest first.
pub(super) static INIT_SIGNING_KEY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('RPUSH', KEYS[1], ARGV[1]) end
return redis.call('LRANGE', KEYS[1], 0, -1)
",
    )
});

/// `init_secret`. KEYS: secret. ARGV: candidate. → the stored value.
pub(super) static INIT_SECRET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
",
    )
});

/// `cas_client_record`. KEYS: `{inv}:rec` (JSON by client_id), `{inv}:ver` (version by
/// client_id). ARGV: client_id, expected version ('' = no record yet), new version, JSON.
/// → 1 written, 0 the stored version differs.
pub(super) static CAS_CLIENT_RECORD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('HGET', KEYS[2], ARGV[1]) or ''
if cur ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
",
    )
});

/// `put_grant`. KEYS: `grants:<sha256(client_id)>` (JSON by family id). ARGV: family id,
/// JSON, the grant's end (Unix ms). The hash lives until its latest grant ends.
pub(super) static PUT_GRANT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local ends = tonumber(ARGV[3])
local cur = redis.call('PEXPIRETIME', KEYS[1])
if cur < ends then redis.call('PEXPIREAT', KEYS[1], ends) end
return 1
",
    )
});

/// Fixed-window counter. KEYS: counter (its name carries the window number). ARGV: window
/// length (ms). → the count including this hit.
pub(super) static COUNT_HIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
",
    )
});
