// Internal: the waiting loop behind wait_async_load_jobs, with a threshold (for back-pressure),
// and the AsyncLoader's connect bound.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <pg_ingest/async_job.hpp>
#include <pg_ingest/connection.hpp>

namespace pg_ingest::detail {

// {1,2,3}: an array literal of `ids`, for a $n::bigint[] or $n::int[] parameter.
std::string id_list_literal(const std::vector<std::int64_t>& ids);

// The statement that submit_async_load() sends for job `id`: the id is in its text, so that
// pg_stat_activity shows which job a backend is submitting.
std::string submit_statement(std::int64_t id);

// Returns once at most `max_pending` of `ids` have not ended, or at `deadline`, with the jobs
// as last read. See wait_async_load_jobs for the LISTEN / polling contract. A job that does not
// exist (or belongs to another role) throws Error 42704, unless `missing_ended`: then it counts
// as ended and is left out of the jobs returned (the server removes ended jobs after
// ingest.job_retention).
std::vector<AsyncJob> wait_for_jobs(Connection& connection, const std::vector<std::int64_t>& ids,
                                    std::chrono::steady_clock::time_point deadline,
                                    std::chrono::milliseconds poll_interval,
                                    std::size_t max_pending, bool missing_ended = false);

// When the next poll is due: `poll_interval` after now, saturated (a poll_interval of
// milliseconds::max() must not overflow the clock) and never past `deadline`.
std::chrono::steady_clock::time_point next_poll_at(std::chrono::steady_clock::time_point deadline,
                                                   std::chrono::milliseconds poll_interval);

// When a connect must be given up: `timeout` after now, or `deadline` if that comes first (the
// Exporter's rule). A timeout of a year or more is no limit (now + milliseconds::max() would
// overflow the clock).
inline Connection::Clock::time_point connect_deadline(Connection::Clock::time_point deadline,
                                                      std::chrono::milliseconds timeout) {
    if (timeout >= std::chrono::hours(24 * 365)) {
        return deadline;
    }
    return std::min(deadline, Connection::Clock::now() + timeout);
}

}  // namespace pg_ingest::detail
