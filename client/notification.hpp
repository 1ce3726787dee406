// Internal: waiting for LISTEN/NOTIFY messages on a Connection, without a statement in flight.
#pragma once

#include <string>
#include <vector>

#include <pg_ingest/connection.hpp>

namespace pg_ingest::detail {

struct Notification {
    std::string channel;
    std::string payload;
    int sender_pid = 0;
};

// Returns the notifications libpq has already queued, or else waits on the socket until one
// arrives or `until` passes (then returns an empty list). The connection must be idle (no
// statement running) and have LISTENed already. Throws Error 08006 (connection_usable() false)
// when the session is lost while waiting, 08003 when it is closed, 58000 (53200 when out of
// memory, retryable) when poll() fails.
// Frees the notifications libpq holds for `connection` (received along with other results).
void drop_notifications(Connection& connection) noexcept;

std::vector<Notification> wait_for_notifications(Connection& connection,
                                                 Connection::Clock::time_point until);

}  // namespace pg_ingest::detail
