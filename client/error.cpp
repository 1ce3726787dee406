#include <pg_ingest/error.hpp>

#include <algorithm>
#include <array>
#include <utility>

#include "libpq_support.hpp"

namespace pg_ingest {

namespace {

bool well_formed_sqlstate(std::string_view code) {
    return code.size() == 5 && std::all_of(code.begin(), code.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
           });
}

// Besides all of class 08. Kept in step with error.hpp, which explains each choice.
constexpr std::array<std::string_view, 11> k_transient_codes = {
    "40001",  // serialization_failure
    "40P01",  // deadlock_detected
    "55P03",  // lock_not_available
    "53000",  // insufficient_resources
    "53200",  // out_of_memory
    "53300",  // too_many_connections
    "57P01",  // admin_shutdown
    "57P02",  // crash_shutdown
    "57P03",  // cannot_connect_now
    "57P05",  // idle_session_timeout
    "25P03",  // idle_in_transaction_session_timeout
};

}  // namespace

bool is_transient_sqlstate(std::string_view sqlstate) noexcept {
    if (!well_formed_sqlstate(sqlstate)) {
        return false;
    }
    if (sqlstate.substr(0, 2) == "08") {
        // 08007 transaction_resolution_unknown: it may have committed; 08P01 protocol_violation:
        // the server refused the bytes themselves, which fail the same way when sent again.
        return sqlstate != "08007" && sqlstate != "08P01";
    }
    return std::find(k_transient_codes.begin(), k_transient_codes.end(), sqlstate) !=
           k_transient_codes.end();
}

Error::Error(const std::string& message) : std::runtime_error(message) {}

Error::Error(const std::string& message, std::string sqlstate, std::string detail, std::string hint,
             bool connection_usable)
    : std::runtime_error(message),
      m_sqlstate(std::move(sqlstate)),
      m_detail(std::move(detail)),
      m_hint(std::move(hint)),
      m_retryable(is_transient_sqlstate(m_sqlstate)),
      m_connection_usable(connection_usable) {}

// Out of line so the vtable and type_info live in the library (one type across .so boundaries).
Error::~Error() = default;

namespace detail {

std::string trim_message(const char* message) {
    std::string text = message != nullptr ? message : "";
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
        text.pop_back();
    }
    return text;
}

Error error_from_result(const PGresult* result, const PGconn* conn) {
    const bool usable = conn != nullptr && PQstatus(conn) == CONNECTION_OK;
    auto field = [result](int code) {
        const char* value = result != nullptr ? PQresultErrorField(result, code) : nullptr;
        return std::string(value != nullptr ? value : "");
    };
    std::string sqlstate = field(PG_DIAG_SQLSTATE);
    std::string message = field(PG_DIAG_MESSAGE_PRIMARY);
    if (message.empty() && result != nullptr) {
        message = trim_message(PQresultErrorMessage(result));
    }
    if (message.empty() && conn != nullptr) {
        message = trim_message(PQerrorMessage(conn));
    }
    if (message.empty()) {
        message = "statement failed without an error message";
    }
    if (sqlstate.empty() && !usable) {
        // libpq reports a dropped session as a client-side error without a code.
        sqlstate = std::string(k_connection_failure);
    }
    return Error(message, std::move(sqlstate), field(PG_DIAG_MESSAGE_DETAIL),
                 field(PG_DIAG_MESSAGE_HINT), usable);
}

Error connection_error(std::string_view sqlstate, const std::string& message) {
    return Error(message, std::string(sqlstate), "", "", false);
}

}  // namespace detail

}  // namespace pg_ingest
