#include <pg_ingest/async_job.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>

#include "async_job_wait.hpp"
#include "exec.hpp"
#include "notification.hpp"

namespace pg_ingest {

namespace {

constexpr std::string_view k_channel = "ingest_async_load";

// The columns read for AsyncJob, cast to text so that the mapping does not depend on the
// server's exact types.
constexpr std::string_view k_job_columns =
    "id::text, job_key::text, owner::text, target::text, state::text, conflict_mode::text, "
    "exception_mode::text, overwrite::text, staging::text, rows_staged::text, "
    "bytes_staged::text, rows_inserted::text, rows_updated::text, rows_skipped::text, "
    "rows_rejected::text, rows_applied::text, attempts::text, error_sqlstate::text, "
    "error_message::text, created_at::text, submitted_at::text, started_at::text, "
    "finished_at::text";

std::string text_at(const Result& result, std::size_t row, std::size_t column) {
    const auto& value = result.get(row, column);
    return value ? *value : std::string();
}

std::int64_t int_at(const Result& result, std::size_t row, std::size_t column) {
    const auto& value = result.get(row, column);
    return value ? std::strtoll(value->c_str(), nullptr, 10) : 0;
}

std::vector<AsyncJob> jobs_from(const Result& result) {
    std::vector<AsyncJob> jobs;
    jobs.reserve(result.rows());
    for (std::size_t r = 0; r < result.rows(); ++r) {
        AsyncJob job;
        std::size_t c = 0;
        job.id = int_at(result, r, c++);
        job.job_key = text_at(result, r, c++);
        job.owner = text_at(result, r, c++);
        job.target = text_at(result, r, c++);
        job.state = parse_job_state(text_at(result, r, c++));
        job.conflict_mode = text_at(result, r, c++);
        job.exception_mode = text_at(result, r, c++);
        job.overwrite = text_at(result, r, c++);
        job.staging = text_at(result, r, c++);
        job.rows_staged = int_at(result, r, c++);
        job.bytes_staged = int_at(result, r, c++);
        job.rows_inserted = int_at(result, r, c++);
        job.rows_updated = int_at(result, r, c++);
        job.rows_skipped = int_at(result, r, c++);
        job.rows_rejected = int_at(result, r, c++);
        job.rows_applied = int_at(result, r, c++);
        job.attempts = int_at(result, r, c++);
        job.error_sqlstate = text_at(result, r, c++);
        job.error_message = text_at(result, r, c++);
        job.created_at = text_at(result, r, c++);
        job.submitted_at = text_at(result, r, c++);
        job.started_at = text_at(result, r, c++);
        job.finished_at = text_at(result, r, c++);
        jobs.push_back(std::move(job));
    }
    return jobs;
}

// A text[] literal: {"a","b"} with quotes and backslashes escaped; nullopt (SQL NULL) when empty.
std::optional<std::string> array_literal(const std::vector<std::string>& items) {
    if (items.empty()) {
        return std::nullopt;
    }
    std::string literal = "{";
    for (std::size_t i = 0; i < items.size(); ++i) {
        literal += i == 0 ? "\"" : ",\"";
        for (const char c : items[i]) {
            if (c == '"' || c == '\\') {
                literal += '\\';
            }
            literal += c;
        }
        literal += '"';
    }
    literal += '}';
    return literal;
}

std::string state_call_sql(std::string_view function, std::int64_t id) {
    return "SELECT ingest." + std::string(function) + "(" + std::to_string(id) + "::bigint)::text";
}

// The id goes into the text (an integer: nothing to escape).
JobState state_call(Connection& connection, std::string_view function, std::int64_t id) {
    const Result result = connection.execute(state_call_sql(function, id));
    return parse_job_state(text_at(result, 0, 0));
}

Error no_such_job(std::int64_t id) {
    return Error(
        "async load job " + std::to_string(id) + " does not exist or belongs to another role",
        "42704", "", "", true);
}

}  // namespace

std::string detail::submit_statement(std::int64_t id) {
    return state_call_sql("submit_async_load", id);
}

std::string detail::id_list_literal(const std::vector<std::int64_t>& ids) {
    std::string literal = "{";
    for (std::size_t i = 0; i < ids.size(); ++i) {
        literal += (i == 0 ? "" : ",") + std::to_string(ids[i]);
    }
    return literal + "}";
}

std::string_view to_string(JobState state) noexcept {
    switch (state) {
        case JobState::init:
            return "INIT";
        case JobState::ready:
            return "READY";
        case JobState::loading:
            return "LOADING";
        case JobState::finish:
            return "FINISH";
        case JobState::fail:
            return "FAIL";
        case JobState::cancel:
            return "CANCEL";
    }
    return "UNKNOWN";
}

JobState parse_job_state(std::string_view text) {
    std::string upper(text);
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    for (const JobState state : {JobState::init, JobState::ready, JobState::loading,
                                 JobState::finish, JobState::fail, JobState::cancel}) {
        if (upper == to_string(state)) {
            return state;
        }
    }
    // A state this client does not know: the server said something it cannot act on.
    throw Error("unknown async load job state '" + std::string(text) + "'", "XX000", "",
                "The pg_ingest extension may be newer than this client library: update the "
                "client.",
                true);
}

bool is_ended(JobState state) noexcept {
    return state == JobState::finish || state == JobState::fail || state == JobState::cancel;
}

void require_async_load(Connection& connection) {
    const Result result = connection.execute(
        "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'pg_ingest'), "
        "EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'ingest' AND p.proname = 'begin_async_load'), current_database()");
    if (text_at(result, 0, 1) == "t") {
        return;
    }
    const std::string version = text_at(result, 0, 0);
    const std::string database = text_at(result, 0, 2);
    if (version.empty()) {
        throw Error("async load jobs are not available in database \"" + database +
                        "\": the pg_ingest extension is not installed",
                    "42883", "",
                    "Run CREATE EXTENSION pg_ingest (version 0.2.0 or later) in that database.",
                    true);
    }
    throw Error("async load jobs are not available in database \"" + database + "\": pg_ingest " +
                    version + " is installed, async jobs need 0.2.0 or later",
                "42883", "", "Run ALTER EXTENSION pg_ingest UPDATE.", true);
}

BegunJob begin_async_load(Connection& connection, const AsyncJobSpec& spec) {
    const Connection::Parameters params = {
        spec.target.quoted(),
        spec.conflict_mode,
        array_literal(spec.conflict_columns),
        array_literal(spec.update_columns),
        spec.job_key.empty() ? std::nullopt : std::optional<std::string>(spec.job_key),
        spec.overwrite,
        spec.overwrite_partition ? std::optional<std::string>(spec.overwrite_partition->quoted())
                                 : std::nullopt,
        spec.exception_mode,
        spec.reject_limit ? std::optional<std::string>(std::to_string(*spec.reject_limit))
                          : std::nullopt,
        spec.keep_staging ? "true" : "false",
        array_literal(spec.columns),
    };
    // Named notation: robust against parameters being added to the function later.
    const Result result = connection.execute_params(
        "SELECT id::text, staging::text, state::text FROM ingest.begin_async_load("
        "target => $1::regclass, conflict_mode => $2::text, conflict_columns => $3::text[], "
        "update_columns => $4::text[], job_key => $5::text, overwrite => $6::text, "
        "overwrite_partition => $7::regclass, exception_mode => $8::text, "
        "reject_limit => $9::bigint, keep_staging => $10::boolean, "
        "columns => $11::text[]" +
            std::string(spec.ordered ? ", ordered => true" : "") + ")",
        params);
    if (result.rows() != 1) {
        throw Error("ingest.begin_async_load returned " + std::to_string(result.rows()) +
                        " rows, expected 1",
                    "XX000", "", "", true);
    }
    BegunJob job;
    job.id = int_at(result, 0, 0);
    job.staging = text_at(result, 0, 1);
    job.state = parse_job_state(text_at(result, 0, 2));
    return job;
}

JobState submit_async_load(Connection& connection, std::int64_t id) {
    return state_call(connection, "submit_async_load", id);
}

JobState cancel_async_load(Connection& connection, std::int64_t id) {
    return state_call(connection, "cancel_async_load", id);
}

JobState retry_async_load(Connection& connection, std::int64_t id) {
    return state_call(connection, "retry_async_load", id);
}

AsyncJob get_async_load_job(Connection& connection, std::int64_t id) {
    auto jobs = jobs_from(connection.execute_params(
        "SELECT " + std::string(k_job_columns) + " FROM ingest.get_async_load_job($1::bigint)",
        {std::to_string(id)}));
    if (jobs.empty()) {
        throw no_such_job(id);
    }
    return std::move(jobs.front());
}

std::vector<AsyncJob> list_async_load_jobs(Connection& connection,
                                           const std::optional<QualifiedName>& target) {
    const std::string select =
        "SELECT " + std::string(k_job_columns) + " FROM ingest.get_async_load_job() g";
    // g.id, the bigint: a bare "id" would be the text column selected above (10 before 9).
    if (target) {
        return jobs_from(connection.execute_params(
            select + " WHERE g.target = $1::regclass ORDER BY g.id DESC", {target->quoted()}));
    }
    return jobs_from(connection.execute(select + " ORDER BY g.id DESC"));
}

std::vector<AsyncJob> wait_async_load_jobs(Connection& connection,
                                           const std::vector<std::int64_t>& ids,
                                           std::chrono::steady_clock::time_point deadline,
                                           std::chrono::milliseconds poll_interval) {
    return detail::wait_for_jobs(connection, ids, deadline, poll_interval, 0);
}

std::chrono::steady_clock::time_point detail::next_poll_at(
    std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds poll_interval) {
    // As Connection::connect saturates its timeout: a year is "no practical limit", and
    // grace_after() saturates at time_point::max() (milliseconds::max() in nanoseconds would
    // overflow before that).
    constexpr std::chrono::milliseconds k_max_interval = std::chrono::hours(24 * 365);
    const auto interval = std::min(poll_interval, k_max_interval);
    return std::min(deadline, detail::grace_after(std::chrono::steady_clock::now(), interval));
}

std::vector<AsyncJob> detail::wait_for_jobs(Connection& connection,
                                            const std::vector<std::int64_t>& ids,
                                            std::chrono::steady_clock::time_point deadline,
                                            std::chrono::milliseconds poll_interval,
                                            std::size_t max_pending, bool missing_ended) {
    if (ids.empty()) {
        return {};
    }
    if (poll_interval <= std::chrono::milliseconds::zero()) {
        poll_interval = std::chrono::milliseconds(1);
    }
    const std::set<std::int64_t> wanted(ids.begin(), ids.end());
    // Reads are short: one still unanswered 5 s past the deadline means a silent network.
    detail::DeadlineScope scope(
        connection,
        std::min(connection.deadline(), detail::grace_after(deadline, std::chrono::seconds(5))));
    // LISTEN before the first read, so that no change between the read and the wait is missed.
    // Not listening between waits: libpq would keep every job notification of the database
    // (all roles') in the connection until the next wait, and a caller that seldom waits would
    // grow without bound. So UNLISTEN on the way out, also when a read failed (best effort: the
    // session may be gone); the next wait listens again first.
    struct Unlisten {
        Connection& connection;
        bool done = false;
        void now() {
            connection.execute("UNLISTEN " + std::string(k_channel));
            detail::drop_notifications(connection);
            done = true;
        }
        ~Unlisten() {
            if (done) {
                return;
            }
            try {
                connection.execute("UNLISTEN " + std::string(k_channel));
            } catch (...) {  // NOLINT(bugprone-empty-catch): the error on its way out says more
            }
            detail::drop_notifications(connection);
        }
    } unlisten{connection};
    connection.execute("LISTEN " + std::string(k_channel));
    const std::string query = "SELECT " + std::string(k_job_columns) +
                              " FROM ingest.get_async_load_job() WHERE id = ANY($1::bigint[])"
                              " ORDER BY id";
    const std::string id_list = detail::id_list_literal(ids);
    while (true) {
        auto jobs = jobs_from(connection.execute_params(query, {id_list}));
        if (jobs.size() < wanted.size() && !missing_ended) {
            for (const auto id : wanted) {
                if (std::none_of(jobs.begin(), jobs.end(),
                                 [id](const AsyncJob& job) { return job.id == id; })) {
                    throw no_such_job(id);
                }
            }
        }
        const auto pending = static_cast<std::size_t>(std::count_if(
            jobs.begin(), jobs.end(), [](const AsyncJob& job) { return !is_ended(job.state); }));
        if (pending <= max_pending || std::chrono::steady_clock::now() >= deadline) {
            unlisten.now();
            return jobs;
        }
        // Sleep until a notification about one of our jobs, the next poll, or the deadline.
        const auto next_poll = detail::next_poll_at(deadline, poll_interval);
        bool relevant = false;
        while (!relevant && std::chrono::steady_clock::now() < next_poll) {
            for (const auto& note : detail::wait_for_notifications(connection, next_poll)) {
                const auto colon = note.payload.find(':');
                const std::int64_t id =
                    std::strtoll(note.payload.substr(0, colon).c_str(), nullptr, 10);
                relevant = relevant || wanted.count(id) != 0;
            }
        }
    }
}

}  // namespace pg_ingest
