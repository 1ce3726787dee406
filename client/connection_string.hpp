// Internal: the three connection-string parsers behind ConnectionOptions. Not installed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <pg_ingest/connection_options.hpp>

namespace pg_ingest::detail {

using Parameter = ConnectionOptions::Parameter;

// Keyword/value pairs in input order (not yet de-duplicated) plus ignored JDBC properties.
struct ParsedConnectionString {
    std::vector<Parameter> parameters;
    std::vector<std::string> ignored;
};

// libpq `key=value ...` syntax, including '...' quoting and backslash escapes.
ParsedConnectionString parse_keyword_value(std::string_view text);
// postgresql:// or postgres:// URI (the caller has checked the scheme).
ParsedConnectionString parse_postgres_uri(std::string_view text);
// jdbc:postgresql: URL (the caller has checked the prefix).
ParsedConnectionString parse_jdbc_url(std::string_view text);

// Throws pg_ingest::Error("invalid connection string: <message>"). Messages must not contain
// secret values; callers name keywords and positions only.
[[noreturn]] void fail(const std::string& message);

// Keywords known to the linked libpq (from PQconndefaults).
bool is_known_keyword(std::string_view keyword);
// password and sslpassword: never printed.
bool is_secret_keyword(std::string_view keyword);

bool iequals(std::string_view a, std::string_view b);
bool istarts_with(std::string_view text, std::string_view prefix);

// One entry of a URL host list; port is empty when not given.
struct HostEntry {
    std::string host;
    std::string port;
};

// Splits on every separator (empty items kept).
std::vector<std::string_view> split(std::string_view text, char separator);
// host[:port] or [ipv6][:port], comma-separated; hosts are percent-decoded when decode_hosts.
std::vector<HostEntry> parse_host_list(std::string_view list, bool decode_hosts);
// Appends host= and port= lists (libpq's parallel comma-separated form) for the entries.
void emit_hosts(const std::vector<HostEntry>& entries, ParsedConnectionString& parsed);
// "unknown <kind> "<name>"", except right after a secret, where the name may be part of it.
std::string unknown_parameter(std::string_view kind, std::string_view name,
                              std::string_view previous);

// Decodes %XY escapes (and '+' as space when plus_is_space). `what` names the component in
// errors ("user name", "password", ...); the text itself is never echoed.
std::string percent_decode(std::string_view text, bool plus_is_space, std::string_view what);

}  // namespace pg_ingest::detail
