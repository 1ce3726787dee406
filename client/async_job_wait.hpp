// Internal: the waiting loop behind wait_async_load_jobs, with a threshold (for back-pressure).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <pg_ingest/async_job.hpp>

namespace pg_ingest::detail {

// {1,2,3}: an array literal of `ids`, for a $n::bigint[] or $n::int[] parameter.
std::string id_list_literal(const std::vector<std::int64_t>& ids);

// The statement that submit_async_load() sends for job `id`: the id is in its text, so that
// pg_stat_activity shows which job a backend is submitting.
std::string submit_statement(std::int64_t id);

// Returns once at most `max_pending` of `ids` have not ended, or at `deadline`, with the jobs
// as last read. See wait_async_load_jobs for the LISTEN / polling contract.
std::vector<AsyncJob> wait_for_jobs(Connection& connection, const std::vector<std::int64_t>& ids,
                                    std::chrono::steady_clock::time_point deadline,
                                    std::chrono::milliseconds poll_interval,
                                    std::size_t max_pending);

}  // namespace pg_ingest::detail
