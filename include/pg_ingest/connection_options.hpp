// pg_ingest::ConnectionOptions — where to connect, parsed from the connection strings users
// already have: libpq "key=value" strings, postgresql:// URIs and jdbc:postgresql:// URLs.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <pg_ingest/export.hpp>

namespace pg_ingest {

// An ordered list of libpq connection keywords and values (the form PQconnectStartParams takes).
//
// Accepted inputs:
//  - empty / blank: no parameters; libpq defaults and PG* environment variables apply.
//  - libpq keyword/value: `host=db port=5432 dbname=dw user=loader password='a b\'c'`.
//  - URI: `postgresql://[user[:password]@][host[:port][,host[:port]...]][/dbname][?key=value&...]`
//    (or postgres://). Hosts may be `[IPv6]`; every component is percent-decoded; query keys are
//    libpq keywords, plus `ssl=true` meaning sslmode=require, as in libpq.
//  - JDBC: `jdbc:postgresql://host[:port][,host[:port]...]/[dbname][?prop=value&...]` or
//    `jdbc:postgresql:dbname`. Missing ports and hosts default to 5432 and localhost as in pgjdbc.
//    Values are URL-decoded as pgjdbc does ('+' is a space). Properties are matched ignoring case:
//      user, password, sslmode, sslcert, sslkey, sslrootcert, sslpassword, service → same keyword
//      ssl or ssl=true → sslmode=verify-full, ssl=false → sslmode=prefer (pgjdbc's meanings,
//        which differ from libpq's; an explicit sslmode wins)
//      connectTimeout, loginTimeout (seconds) → connect_timeout (the smaller non-zero value)
//      ApplicationName → application_name;  channelBinding → channel_binding
//      gssEncMode → gssencmode;  kerberosServerName → krbsrvname;  tcpKeepAlive → keepalives
//      options, currentSchema (→ -c search_path=...), readOnly=true
//        (→ -c default_transaction_read_only=on) → one combined libpq "options" value
//      targetServerType any|primary|master|secondary|standby|slave|preferSecondary|
//        preferStandby|preferSlave → target_session_attrs (preferPrimary has no libpq mapping)
//      requireAuth → require_auth when the linked libpq knows it (16+), else an Error
//    Java-only properties with no libpq meaning (prepareThreshold, socketTimeout, sslfactory,
//    reWriteBatchedInserts, ... see jdbc_ignored_properties()) are ignored and reported by
//    ignored_parameters(). Any other property is an Error naming it, so typos are not lost.
//    user:password@ is not JDBC syntax and is rejected.
//
// Keywords are checked against the keywords the linked libpq knows; ports must be 1..65535 and
// the port list must have one entry or one per host. A `dbname` value is taken literally (it is
// never expanded as a nested connection string).
//
// Value type: copyable, no shared state, no network I/O (the first parse asks libpq for its
// keyword list). Parsing and set() throw pg_ingest::Error (with an empty SQLSTATE) naming the
// problem and leave the object unchanged; error messages never contain password values.
class PG_INGEST_API ConnectionOptions {
  public:
    using Parameter = std::pair<std::string, std::string>;

    // No parameters: libpq defaults and environment variables apply.
    ConnectionOptions() = default;

    // Parses any of the three forms above. Throws pg_ingest::Error on malformed input.
    explicit ConnectionOptions(std::string_view connection_string);

    // Sets (or replaces, keeping its position) one libpq keyword, e.g. a password kept apart from
    // the URL. Throws pg_ingest::Error for an unknown keyword or an invalid port/timeout value.
    void set(std::string_view keyword, std::string value);

    // The value of a keyword, or nullopt when it is not set.
    std::optional<std::string> get(std::string_view keyword) const;

    // Keyword/value pairs in the order given; for PQconnectStartParams. May contain secrets.
    const std::vector<Parameter>& parameters() const noexcept { return m_parameters; }

    // JDBC properties that were recognised as Java-only and ignored, as written in the URL.
    const std::vector<std::string>& ignored_parameters() const noexcept {
        return m_ignored_parameters;
    }

    // The parameters as a libpq key=value string with password and sslpassword values replaced by
    // `***`. This is the only form the library writes to logs or error messages.
    std::string redacted() const;

    // The pgjdbc property names (lower case) that are accepted and ignored.
    static const std::vector<std::string>& jdbc_ignored_properties();

  private:
    std::vector<Parameter> m_parameters;
    std::vector<std::string> m_ignored_parameters;
};

}  // namespace pg_ingest
