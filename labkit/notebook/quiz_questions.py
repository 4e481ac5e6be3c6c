"""The lab's two quizzes, as data (the engine is :mod:`labkit.notebook.quiz`).

Quiz 1 follows notebook 06 (partitions, expiry, the two consumers, their state, crash and resume, the cap);
quiz 2 follows notebook 10 (consumer groups, pending entries, recovery, poison pills).  Every option says why
it is right or why it is not.  A predict-the-reply question's commands run on a scratch stream, ``{key}``;
each option's ``reply`` is the reply it predicts, read as the question's ``reply`` says
(:func:`labkit.notebook.quiz.read_reply`).
"""

from __future__ import annotations

from .quiz import Option as O
from .quiz import Question as Q
from .quiz import QuizSpec

MIDNIGHT = "1735689600000"          # 2025-01-01 00:00:00 UTC, in ms
THREE = tuple(("XADD", "{key}", f"{i}-0", "n", str(i)) for i in (1, 2, 3))    # a scratch stream of three entries

QUIZ_1 = QuizSpec("quiz-1", "Quiz 1 · Partitioned streams in production", (
    Q("A reading taken at 2025-01-02 23:59:59.500 UTC is written by the producer. Which key holds it?", (
        O("a", "temps:20250102", "the partition is the reading's own UTC date; the ID's milliseconds "
                                 "(1735862399500) fall on January 2nd, half a second before midnight."),
        O("b", "temps:20250103", "the next day's partition begins at 00:00:00.000 UTC; this reading is half a "
                                 "second earlier."),
        O("c", "the partition of the server's local date", "the lab is UTC everywhere: a server's time zone would "
                                                           "move readings between partitions."),
        O("d", "temps:averages", "temps:averages holds the hourly averages the aggregating consumer publishes, "
                                 "never raw readings."),
    ), "a"),
    Q("Three readings, one second apart, then an `XRANGE` whose two bounds are bare milliseconds. "
      "How many entries does it return?", (
        O("a", "1", "the end bound is inclusive too, and a bare millisecond value covers every sequence number "
                    "within it.", reply="1"),
        O("b", "2", "both bounds are inclusive: the readings at …600000 and …601000; the one at …602000 is after "
                    "the end.", reply="2"),
        O("c", "3", "…602000 is one second past the end bound.", reply="3"),
        O("d", "0", "XRANGE by time works because entry IDs are times: these two bounds enclose two readings.",
          reply="0"),
    ), "b", run=(("XADD", "{key}", f"{MIDNIGHT}-0", "temp_f", "50"),
                 ("XADD", "{key}", "1735689601000-0", "temp_f", "51"),
                 ("XADD", "{key}", "1735689602000-0", "temp_f", "52"),
                 ("XRANGE", "{key}", MIDNIGHT, "1735689601000")), reply="count"),
    Q("The same hour's average is published twice under the same ID (the ID is the hour's start), as a consumer "
      "that replays a batch after a crash would try. What does Redis answer to the second `XADD`?", (
        O("a", "an ID, and the stream holds two entries", "IDs must grow: Redis never stores two entries under "
                                                          "one ID.", reply="ok"),
        O("b", "an error: the ID is equal or smaller than the stream's top item",
          "an explicit ID must be greater than the last one. Because each average's ID is its hour's start, the "
          "same hour can never be published twice, whatever the consumer replays.", reply="error"),
        O("c", "it replaces the first entry", "streams are append-only; XADD never overwrites an entry."),
        O("d", "nothing: Redis ignores it without a word", "Redis refuses it with an error, which the consumer "
                                                           "can see."),
    ), "b", run=(("XADD", "{key}", f"{MIDNIGHT}-0", "hour", "0", "average_temp_f", "50.25"),
                 ("XADD", "{key}", f"{MIDNIGHT}-0", "hour", "0", "average_temp_f", "50.25")), reply="outcome"),
    Q("A stream written without `EXPIRE`/`EXPIREAT`: what does `TTL` say?", (
        O("a", "-2", "-2 means the key does not exist; this one does.", reply="-2"),
        O("b", "-1", "-1 means the key exists and has no expiry. The producer sets one on each partition in "
                     "the same transaction as its first entry, so a partition is never left like this.", reply="-1"),
        O("c", "0", "TTL never says 0 for a key without an expiry.", reply="0"),
        O("d", "86400", "nothing set a day's expiry on this key.", reply="86400"),
    ), "b", run=(("XADD", "{key}", "*", "temp_f", "50"), ("TTL", "{key}")), reply="value"),
    Q("In notebook 03 the partitions' TTLs grow by about 24 hours from one partition to the next. Why?", (
        O("a", "each partition expires a fixed retention after its own UTC day ends, so the oldest goes first",
          "the expiry follows the data's day, not the moment it was written: a day later, a day later to expire."),
        O("b", "Redis adds a day to each new key's TTL", "Redis sets no expiry of its own; the producer sets "
                                                         "each one with EXPIREAT."),
        O("c", "TTL counts the readings still to expire", "TTL is time, in seconds, never a count of entries."),
        O("d", "the consumers extend a partition's TTL while they read it", "reading never changes a key's "
                                                                            "expiry; only the producer sets it."),
    ), "a"),
    Q("When does the aggregating consumer publish the average of hour 14:00–15:00?", (
        O("a", "every 3,600 readings", "a count says nothing about time: a gap in the readings would shift "
                                       "every hour after it."),
        O("b", "when the averages consumer asks for it", "the averages consumer only reads temps:averages; it "
                                                         "never asks the aggregating consumer for anything."),
        O("c", "at 15:00 by the server's clock", "the consumer goes by the readings' times in their IDs, so it "
                                                 "can process last year's data at full speed."),
        O("d", "when a reading of a later hour arrives, or the producer marks the partition complete",
          "the hour comes from each entry's ID; an hour can only be called complete once something later "
          "(or the manifest's mark for the partition's last hour) says so."),
    ), "d"),
    Q("The aggregating consumer appends an hour's average to `temps:averages` and saves its new position in "
      "`aggregating_consumer_state` in one transaction. What does that buy?", (
        O("a", "after a crash, either both happened or neither: no hour is lost or published twice",
          "a crash between two separate writes would leave an average without the position that produced it "
          "(or the reverse); in one transaction Redis applies both or none."),
        O("b", "speed: one round trip instead of two", "the round trip is a side benefit; the point is "
                                                       "atomicity."),
        O("c", "XADD with MAXLEN only works inside MULTI", "XADD … MAXLEN works anywhere."),
        O("d", "it wakes the averages consumer", "any XADD wakes a blocked XREAD, in a transaction or not."),
    ), "a"),
    Q("Both consumers crash at 14:20 in the middle of a partition. After **Resume**, where does the aggregating "
      "consumer carry on?", (
        O("a", "from the start of the partition, recomputing every hour", "that would publish hours that are "
                                                                          "already in temps:averages again."),
        O("b", "from 14:00, the start of the open hour", "it does not need to: the open hour's sum and count "
                                                         "were saved with its position."),
        O("c", "after `last_message_id` in its state hash, with the open hour's saved sum and count",
          "the state holds the position and the running sum and count of the open hour, saved together with "
          "each batch; readings after that position are read again, and nothing is counted twice."),
        O("d", "only new readings (`$`)", "readings written during the crash would be skipped for good."),
    ), "c"),
    Q("Five `XADD`s, each with `MAXLEN ~ 3`, to a new stream (the server's `stream-node-max-entries` is 100 by "
      "default). What does `XLEN` say?", (
        O("a", "3", "that is what an exact `MAXLEN 3` would leave.", reply="3"),
        O("b", "5", "`~` trims whole nodes only, and all five entries sit in one node that may hold 100: nothing "
                    "can go without going below 3.", reply="5"),
        O("c", "0", "MAXLEN keeps at least the number it is given.", reply="0"),
        O("d", "100", "a stream never holds more entries than were added.", reply="100"),
    ), "b", run=tuple(("XADD", "{key}", "MAXLEN", "~", "3", "*", "n", str(i)) for i in range(5)) + (("XLEN", "{key}"),),
      reply="value"),
    Q("`XINFO STREAM temps:averages` says `length 124` and `entries-added 240`. How many hourly averages did "
      "the cap trim?", (
        O("a", "116", "entries-added counts every XADD ever; length what is left: 240 − 124 = 116 trimmed."),
        O("b", "120", "120 is the cap, the least it keeps, not what it removed."),
        O("c", "124", "124 entries are still in the stream."),
        O("d", "none: XLEN would have to be 120 first", "`~` keeps a little more than 120 (whole nodes); the "
                                                        "stream has been trimmed already."),
    ), "a"),
    Q("The averages consumer restarts. Which ID does its first `XREAD` start after?", (
        O("a", "`$`", "`$` means only what arrives from now on: hours published while it was down would never "
                      "be printed."),
        O("b", "`0`", "it would print every hour again, from the oldest the cap kept."),
        O("c", "`last_message_id` from `averages_consumer_state`", "it saves the last ID it printed after each "
                                                                   "read and starts after it."),
        O("d", "`>`", "`>` belongs to consumer groups (XREADGROUP); this consumer reads with plain XREAD."),
    ), "c"),
))

QUIZ_2 = QuizSpec("quiz-2", "Quiz 2 · Consumer groups, pending entries and poison pills", (
    Q("A stream holds three entries. A group is created with `$`, then a consumer reads with `>`. How many "
      "entries does it get?", (
        O("a", "0", "`$` puts the group's cursor after the last entry: only entries added later are delivered.",
          reply="0"),
        O("b", "1", "the cursor is after all three.", reply="1"),
        O("c", "3", "that is what a group created at `0` would get.", reply="3"),
        O("d", "an error: the group must be created before the entries", "a group can be created on a stream "
                                                                         "of any length."),
    ), "a", run=THREE + (("XGROUP", "CREATE", "{key}", "g", "$"),
                 ("XREADGROUP", "GROUP", "g", "c1", "COUNT", "10", "STREAMS", "{key}", ">")), reply="entries"),
    Q("A group at `0`; consumer `c1` reads `COUNT 2` with `>` and acknowledges nothing. What count does "
      "`XPENDING`'s summary give?", (
        O("a", "0", "delivered entries stay pending until XACK.", reply="0"),
        O("b", "2", "both delivered entries are in the group's pending entries list until acknowledged.",
          reply="2"),
        O("c", "3", "the third entry was never delivered, so it is not pending.", reply="3"),
        O("d", "1", "every entry delivered counts, not only the newest.", reply="1"),
    ), "b", run=THREE + (("XGROUP", "CREATE", "{key}", "g", "0"),
                 ("XREADGROUP", "GROUP", "g", "c1", "COUNT", "2", "STREAMS", "{key}", ">"),
                 ("XPENDING", "{key}", "g")), reply="pending"),
    Q("Same start: `c1` holds two pending entries. Now `c2` reads with the ID `0` instead of `>`. How many "
      "entries does `c2` get?", (
        O("a", "0", "an explicit ID reads the consumer's *own* pending entries; c2 has none.", reply="0"),
        O("b", "2", "c1's entries stay c1's until someone claims them (XCLAIM / XAUTOCLAIM).", reply="2"),
        O("c", "3", "an explicit ID never reads new entries.", reply="3"),
        O("d", "1", "c2 has no pending entries at all.", reply="1"),
    ), "a", run=THREE + (("XGROUP", "CREATE", "{key}", "g", "0"),
                 ("XREADGROUP", "GROUP", "g", "c1", "COUNT", "2", "STREAMS", "{key}", ">"),
                 ("XREADGROUP", "GROUP", "g", "c2", "COUNT", "10", "STREAMS", "{key}", "0")), reply="entries"),
    Q("`c1` reads one entry with `>`, then (restarting) reads its own pending entries with `0`. What delivery "
      "count does `XPENDING`'s extended form show for that entry?", (
        O("a", "1", "re-reading your own pending entries counts as a delivery too.", reply="1"),
        O("b", "2", "each delivery, the first `>` and the re-read from `0`, raises the count.", reply="2"),
        O("c", "0", "a delivered entry has a count of at least 1.", reply="0"),
        O("d", "(no pending entry)", "reading does not acknowledge: it is still pending.",
          reply="(no pending entry)"),
    ), "b", run=(("XADD", "{key}", "1-0", "n", "1"), ("XGROUP", "CREATE", "{key}", "g", "0"),
                 ("XREADGROUP", "GROUP", "g", "c1", "COUNT", "1", "STREAMS", "{key}", ">"),
                 ("XREADGROUP", "GROUP", "g", "c1", "COUNT", "1", "STREAMS", "{key}", "0"),
                 ("XPENDING", "{key}", "g", "-", "+", "10")), reply="deliveries"),
    Q("`c1` reads two entries with `NOACK`. What count does `XPENDING`'s summary give?", (
        O("a", "2", "NOACK entries never enter the pending list.", reply="2"),
        O("b", "0", "with NOACK, delivery counts as acknowledgement: fast, but a crash loses those entries.",
          reply="0"),
        O("c", "1", "none of them is pending.", reply="1"),
        O("d", "an error: NOACK needs XACK later", "NOACK means no XACK is ever needed.", reply="error: ERR"),
    ), "b", run=(("XADD", "{key}", "1-0", "n", "1"), ("XADD", "{key}", "2-0", "n", "2"),
                 ("XGROUP", "CREATE", "{key}", "g", "0"),
                 ("XREADGROUP", "GROUP", "g", "c1", "COUNT", "2", "NOACK", "STREAMS", "{key}", ">"),
                 ("XPENDING", "{key}", "g")), reply="pending"),
    Q("A worker `XACK`s an entry. What happens to the entry in the stream?", (
        O("a", "it is deleted from the stream", "XACK only touches the group; deleting is XDEL's or a trim's job."),
        O("b", "it moves to a dead-letter stream", "dead-lettering is something your code does (XADD to another "
                                                   "stream, then XACK); XACK itself moves nothing."),
        O("c", "it stays; only the group's pending entries list forgets it",
          "other groups may still need it, so the stream keeps it until trimmed."),
        O("d", "it gets an acked field", "entries are immutable; nothing is written into them."),
    ), "c"),
    Q("Two supervisors run `XCLAIM … min-idle-time 60000` on the same stalled entry at about the same time. "
      "What happens?", (
        O("a", "the first gets it; the second gets nothing", "XCLAIM resets the idle time; the min-idle-time "
                                                             "check makes the second claim a no-op."),
        O("b", "both get it, and it is processed twice", "the first claim resets the entry's idle time, so the "
                                                         "second finds it idle for less than 60 s."),
        O("c", "the second gets an error", "XCLAIM answers with what it claimed, here nothing: no error."),
        O("d", "the entry goes back to the group's cursor for `>`", "pending entries are never delivered "
                                                                    "with `>` again."),
    ), "a"),
    Q("`XAUTOCLAIM` answers with the next start ID `0-0`. What does that tell you?", (
        O("a", "nothing was claimed", "it may well have claimed entries; the cursor says where to go on."),
        O("b", "the group is empty", "the cursor says nothing about the group's size."),
        O("c", "start again from the beginning", "that would just repeat the same scan."),
        O("d", "the scan of the pending list is complete", "like SCAN's 0, a `0-0` cursor means the whole "
                                                           "pending list has been looked at."),
    ), "d"),
    Q("How can a worker pool tell a **poison pill** (an entry whose work always fails)?", (
        O("a", "its fields are empty", "a poison pill usually looks like any other entry; an empty `(id, {})` is "
                                       "a pending entry whose data was trimmed away."),
        O("b", "its delivery count passes a threshold; then it is dead-lettered and acknowledged",
          "each failed attempt leaves it pending and each claim raises the count. Beware: an entry that was just "
          "unlucky with crashing workers also collects deliveries."),
        O("c", "Redis marks it after three failures", "Redis knows nothing of your work's failures."),
        O("d", "XPENDING lists it with an error", "XPENDING shows owner, idle time and delivery count only."),
    ), "b"),
    Q("A worker reads `COUNT 10`, and acknowledges the whole batch only after all ten succeeded. One entry is a "
      "poison pill. How many healthy entries are stranded in the pending list with it?", (
        O("a", "0", "the batch is acknowledged only when all ten succeed, which never happens."),
        O("b", "1", "only the pill is unhealthy; the others wait with it."),
        O("c", "9", "COUNT − 1: the whole batch shares the pill's fate. Acknowledge per entry, right after its "
                    "own work, and a pill strands nobody."),
        O("d", "10", "the pill itself is not a healthy entry."),
    ), "c"),
))

QUIZZES = {q.name: q for q in (QUIZ_1, QUIZ_2)}
