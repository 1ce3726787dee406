#include <pg_ingest/connection_options.hpp>

#include <algorithm>
#include <cctype>
#include <new>
#include <set>
#include <vector>

#include <libpq-fe.h>

#include <pg_ingest/error.hpp>

#include "connection_string.hpp"

namespace pg_ingest {

namespace detail {

void fail(const std::string& message) {
    throw Error("invalid connection string: " + message);
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

bool istarts_with(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

bool is_secret_keyword(std::string_view keyword) {
    return keyword == "password" || keyword == "sslpassword";
}

bool is_known_keyword(std::string_view keyword) {
    // Asked of the linked libpq, so keywords of a newer libpq are accepted without a rebuild.
    static const std::set<std::string, std::less<>> known = [] {
        std::set<std::string, std::less<>> keywords;
        PQconninfoOption* options = PQconndefaults();
        if (options == nullptr) {  // libpq returns NULL only when out of memory
            throw std::bad_alloc();
        }
        for (const PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
            keywords.emplace(option->keyword);
        }
        PQconninfoFree(options);
        return keywords;
    }();
    return known.find(keyword) != known.end();
}

namespace {

bool is_space(char c) {
    return std::isspace(static_cast<unsigned char>(c)) != 0;
}

// Names the position of a problem without echoing text that may be part of a password: after a
// secret value, a stray token is most likely the rest of that value.
std::string after(std::string_view previous_keyword) {
    if (previous_keyword.empty()) {
        return "";
    }
    return " after the value of \"" + std::string(previous_keyword) +
           "\" (quote values that contain spaces: key='a b')";
}

// A token where a keyword should be, quoted in a message only when it could be one (letters,
// digits, '_'): anything else, like "postgresql:/user:secret@host/db" (a URI without its
// "//"), may hold a password.
std::string shown_token(const std::string& token) {
    const bool name_like =
        token.size() <= 64 && std::all_of(token.begin(), token.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
        });
    if (name_like) {
        return "\"" + token + "\"";
    }
    return "a token that is not an option name (not shown: it may hold a password; a URI starts "
           "with postgresql:// or postgres://)";
}

}  // namespace

ParsedConnectionString parse_keyword_value(std::string_view text) {
    ParsedConnectionString parsed;
    std::string previous;
    std::size_t i = 0;
    while (true) {
        while (i < text.size() && is_space(text[i])) {
            ++i;
        }
        if (i == text.size()) {
            break;
        }
        const std::size_t keyword_start = i;
        while (i < text.size() && !is_space(text[i]) && text[i] != '=') {
            ++i;
        }
        const std::string keyword(text.substr(keyword_start, i - keyword_start));
        while (i < text.size() && is_space(text[i])) {
            ++i;
        }
        const bool previous_secret = is_secret_keyword(previous);
        if (keyword.empty()) {
            fail("missing keyword before \"=\"" + after(previous));
        }
        if (i == text.size() || text[i] != '=') {
            fail(previous_secret ? "expected keyword=value" + after(previous)
                                 : "missing \"=\" after " + shown_token(keyword));
        }
        if (!is_known_keyword(keyword)) {
            fail(previous_secret ? "unknown connection option" + after(previous)
                                 : "unknown connection option " + shown_token(keyword));
        }
        ++i;  // '='
        while (i < text.size() && is_space(text[i])) {
            ++i;
        }
        std::string value;
        if (i < text.size() && text[i] == '\'') {
            ++i;
            bool closed = false;
            while (i < text.size()) {
                const char c = text[i++];
                if (c == '\\' && i < text.size()) {
                    value += text[i++];
                } else if (c == '\'') {
                    closed = true;
                    break;
                } else {
                    value += c;
                }
            }
            if (!closed) {
                fail("unterminated quoted value for \"" + keyword + "\"");
            }
        } else {
            while (i < text.size() && !is_space(text[i])) {
                const char c = text[i++];
                if (c == '\\' && i < text.size()) {
                    value += text[i++];
                } else {
                    value += c;
                }
            }
        }
        parsed.parameters.emplace_back(keyword, std::move(value));
        previous = keyword;
    }
    return parsed;
}

}  // namespace detail

namespace {

using detail::fail;

bool all_digits(std::string_view text) {
    return !text.empty() &&
           std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Port values are not echoed: in a malformed URL the "port" may be a piece of the password.
void validate_ports(std::string_view list) {
    const auto ports = detail::split(list, ',');
    for (std::size_t n = 0; n < ports.size(); ++n) {
        const std::string_view port = ports[n];
        if (port.empty()) {
            continue;  // libpq: an empty value or entry means the default port (for that host)
        }
        if (!all_digits(port) || port.size() > 5 || std::stoul(std::string(port)) == 0 ||
            std::stoul(std::string(port)) > 65535) {
            const std::string where =
                ports.size() > 1 ? " (entry " + std::to_string(n + 1) + " of the port list)" : "";
            fail("invalid port" + where + ": must be a number from 1 to 65535");
        }
    }
}

void validate_value(std::string_view keyword, std::string_view value) {
    if (value.find('\0') != std::string_view::npos) {
        fail("the value of \"" + std::string(keyword) + "\" contains a NUL byte");
    }
    if (keyword == "port") {
        validate_ports(value);
    } else if (keyword == "connect_timeout") {
        if (!all_digits(value) || value.size() > 9) {
            fail("connect_timeout must be a whole number of seconds");
        }
    } else if (keyword == "keepalives" || keyword == "keepalives_idle" ||
               keyword == "keepalives_interval" || keyword == "keepalives_count" ||
               keyword == "tcp_user_timeout") {
        if (!all_digits(value) || value.empty() || value.size() > 9) {
            fail(std::string(keyword) + " must be a whole number");
        }
    } else {
        // Values libpq checks only when it connects, where a bad one would be a connection
        // failure (08001, retryable): retrying cannot mend a setting.
        static const std::vector<std::pair<std::string_view, std::vector<std::string_view>>>
            choices = {
                {"sslmode", {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}},
                {"target_session_attrs",
                 {"any", "read-write", "read-only", "primary", "standby", "prefer-standby"}},
                {"gssencmode", {"disable", "prefer", "require"}},
                {"channel_binding", {"disable", "prefer", "require"}},
                {"ssl_min_protocol_version", {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"}},
                {"ssl_max_protocol_version", {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"}},
            };
        for (const auto& [name, allowed] : choices) {
            if (keyword != name) {
                continue;
            }
            if (std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
                std::string list;
                for (const auto& a : allowed) {
                    list += (list.empty() ? "" : ", ") + std::string(a);
                }
                fail(std::string(name) + " must be one of " + list);
            }
        }
    }
}

// Quotes a value the way libpq reads it back.
std::string quote_value(std::string_view value) {
    const bool plain = !value.empty() && std::none_of(value.begin(), value.end(), [](char c) {
        return std::isspace(static_cast<unsigned char>(c)) != 0 || c == '\'' || c == '\\';
    });
    if (plain) {
        return std::string(value);
    }
    std::string quoted = "'";
    for (const char c : value) {
        if (c == '\'' || c == '\\') {
            quoted += '\\';
        }
        quoted += c;
    }
    return quoted + "'";
}

}  // namespace

ConnectionOptions::ConnectionOptions(std::string_view connection_string) {
    std::string_view text = connection_string;
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())) != 0) {
        text.remove_prefix(1);
    }
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) {
        text.remove_suffix(1);
    }
    detail::ParsedConnectionString parsed;
    const std::size_t scheme_end = text.find("://");
    if (detail::istarts_with(text, "jdbc:")) {
        if (!detail::istarts_with(text, "jdbc:postgresql:")) {
            fail("unsupported JDBC URL: only jdbc:postgresql: is supported");
        }
        parsed = detail::parse_jdbc_url(text);
    } else if (detail::istarts_with(text, "postgresql://") ||
               detail::istarts_with(text, "postgres://")) {
        parsed = detail::parse_postgres_uri(text);
    } else if (scheme_end != std::string_view::npos && scheme_end > 0 &&
               std::isalpha(static_cast<unsigned char>(text.front())) != 0 &&
               std::all_of(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(scheme_end),
                           [](char c) {
                               return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
                                      c == '+' || c == '-' || c == '.';
                           })) {
        fail("unsupported URI scheme \"" + std::string(text.substr(0, scheme_end)) +
             "\": use postgresql://, postgres:// or jdbc:postgresql://");
    } else {
        parsed = detail::parse_keyword_value(text);
    }
    for (auto& [keyword, value] : parsed.parameters) {
        set(keyword, std::move(value));
    }
    m_ignored_parameters = std::move(parsed.ignored);

    const auto host = get("host");
    const auto port = get("port");
    if (host && port) {
        const std::size_t hosts = detail::split(*host, ',').size();
        const std::size_t ports = detail::split(*port, ',').size();
        if (ports != 1 && ports != hosts) {
            fail("the port list has " + std::to_string(ports) + " entries for " +
                 std::to_string(hosts) + " hosts (give one port, or one per host)");
        }
    }
}

void ConnectionOptions::set(std::string_view keyword, std::string value) {
    if (!detail::is_known_keyword(keyword)) {
        fail("unknown connection option \"" + std::string(keyword) + "\"");
    }
    validate_value(keyword, value);
    const auto found = std::find_if(m_parameters.begin(), m_parameters.end(),
                                    [keyword](const Parameter& p) { return p.first == keyword; });
    if (found != m_parameters.end()) {
        found->second = std::move(value);
    } else {
        m_parameters.emplace_back(std::string(keyword), std::move(value));
    }
}

std::optional<std::string> ConnectionOptions::get(std::string_view keyword) const {
    const auto found = std::find_if(m_parameters.begin(), m_parameters.end(),
                                    [keyword](const Parameter& p) { return p.first == keyword; });
    if (found == m_parameters.end()) {
        return std::nullopt;
    }
    return found->second;
}

std::string ConnectionOptions::redacted() const {
    std::string text;
    for (const auto& [keyword, value] : m_parameters) {
        if (!text.empty()) {
            text += ' ';
        }
        text += keyword;
        text += '=';
        text += detail::is_secret_keyword(keyword) ? "***" : quote_value(value);
    }
    return text;
}

}  // namespace pg_ingest
