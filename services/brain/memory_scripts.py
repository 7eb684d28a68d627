"""The Lua scripts of `services.brain.memory`: every write of a conversation's memory, each
checking the conversation lock's fencing token in the same script, and the snapshot read.

All keys of one script share the conversation's Redis Cluster hash tag (`ConversationKeys`,
`LockKeys`), so each runs in one slot.
"""

from __future__ import annotations

from services.brain.locks import RELEASE_SCRIPT

# KEYS: lock, wake, turns, overflow, summary, processed keys...
# ARGV: token, max turns, ttl s, processed ttl s, summarize after, overflow cap, outcome,
#       then the entries (JSON) to append.
# Returns {'fenced'} or {'ok', released (0/1)}.
COMMIT = (
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'fenced'} end
for i = 8, #ARGV do redis.call('RPUSH', KEYS[3], ARGV[i]) end
local excess = redis.call('LLEN', KEYS[3]) - tonumber(ARGV[2])
if excess > 0 then
  for _, entry in ipairs(redis.call('LPOP', KEYS[3], excess)) do
    redis.call('RPUSH', KEYS[4], entry)
  end
  redis.call('LTRIM', KEYS[4], -tonumber(ARGV[6]), -1)
end
for i = 6, #KEYS do redis.call('SET', KEYS[i], ARGV[7], 'EX', ARGV[4]) end
for i = 3, 5 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
if redis.call('LLEN', KEYS[4]) >= tonumber(ARGV[5]) then return {'ok', 0} end
"""
    + "local function release()\n"
    + RELEASE_SCRIPT
    + "\nend\nrelease()\nreturn {'ok', 1}\n"
)

# KEYS: lock, wake, overflow, summary. ARGV: token, summary, entries folded, ttl s.
# Stores the new summary, drops the folded overflow entries, releases. 1 or 0 (fenced).
FOLD_SUMMARY = (
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[4], ARGV[2], 'EX', ARGV[4])
redis.call('LTRIM', KEYS[3], tonumber(ARGV[3]), -1)
redis.call('EXPIRE', KEYS[3], ARGV[4])
"""
    + "local function release()\n"
    + RELEASE_SCRIPT
    + "\nend\nrelease()\nreturn 1\n"
)

# KEYS: lock, turns, overflow, summary, processed. ARGV: token, summary, ttl s,
# processed ttl s, outcome, then the merged entries. Replaces the memory wholesale.
REPLACE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
for i = 6, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
if ARGV[2] ~= '' then redis.call('SET', KEYS[4], ARGV[2], 'EX', ARGV[3]) end
for i = 2, 4 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
redis.call('SET', KEYS[5], ARGV[5], 'EX', ARGV[4])
return 1
"""


# KEYS: lock, turns. ARGV: token, the last entry as read, its replacement, ttl s.
# Replaces the newest entry if it is still the one read. 1, 0 (changed meanwhile), -1 fenced.
AMEND_LAST = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('LINDEX', KEYS[2], -1) ~= ARGV[2] then return 0 end
redis.call('LSET', KEYS[2], -1, ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""


# KEYS: summary, overflow, turns, processed keys... Every part at one instant (a script, not
# MULTI/EXEC: see `services.common.redis`), in `ConversationMemory.queue_reads`'s order.
SNAPSHOT = """
local parts = {redis.call('GET', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1),
  redis.call('LRANGE', KEYS[3], 0, -1)}
for i = 4, #KEYS do parts[#parts + 1] = redis.call('GET', KEYS[i]) end
return parts
"""
