// postgresql:// URIs → libpq keyword/value pairs, and the URL pieces JDBC parsing shares.
#include <string>
#include <vector>

#include "connection_string.hpp"
#include "hex_digit.hpp"

namespace pg_ingest::detail {

namespace {

std::string join(const std::vector<std::string>& items) {
    std::string joined;
    for (std::size_t i = 0; i < items.size(); ++i) {
        joined += (i == 0 ? "" : ",") + items[i];
    }
    return joined;
}

}  // namespace

std::vector<std::string_view> split(std::string_view text, char separator) {
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    while (true) {
        const std::size_t end = text.find(separator, start);
        parts.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
        if (end == std::string_view::npos) {
            return parts;
        }
        start = end + 1;
    }
}

// After a password, an unexpected token is most likely the rest of the password: do not echo it.
std::string unknown_parameter(std::string_view kind, std::string_view name,
                              std::string_view previous) {
    if (is_secret_keyword(previous)) {
        return "unknown " + std::string(kind) + " after \"" + std::string(previous) +
               "\" (percent-encode '&' in values as %26)";
    }
    return "unknown " + std::string(kind) + " \"" + std::string(name) + "\"";
}

// host[:port] or [ipv6][:port], comma-separated. Hosts are percent-decoded for URIs (libpq does
// so, e.g. %2Ftmp for a socket directory) and taken as written for JDBC (pgjdbc does not).
std::vector<HostEntry> parse_host_list(std::string_view list, bool decode_hosts) {
    std::vector<HostEntry> entries;
    const auto items = split(list, ',');
    for (std::size_t n = 0; n < items.size(); ++n) {
        const std::string_view item = items[n];
        const std::string where = items.size() > 1 ? " in host entry " + std::to_string(n + 1) : "";
        std::string_view host = item;
        std::string_view port;
        bool has_port = false;
        if (!item.empty() && item.front() == '[') {
            const std::size_t close = item.find(']');
            if (close == std::string_view::npos) {
                fail("missing \"]\" after an IPv6 address" + where);
            }
            host = item.substr(1, close - 1);
            if (host.empty()) {
                fail("empty IPv6 address" + where);
            }
            const std::string_view rest = item.substr(close + 1);
            if (!rest.empty() && rest.front() != ':') {
                fail("unexpected text after \"]\"" + where);
            }
            has_port = !rest.empty();
            port = has_port ? rest.substr(1) : rest;
        } else if (const std::size_t colon = item.find(':'); colon != std::string_view::npos) {
            if (item.find(':', colon + 1) != std::string_view::npos) {
                fail("IPv6 addresses must be written in brackets, e.g. [::1]:5432" + where);
            }
            host = item.substr(0, colon);
            port = item.substr(colon + 1);
            has_port = true;
        }
        if (has_port && port.empty() && !decode_hosts) {
            fail("empty port after \":\"" + where);  // pgjdbc refuses it; libpq reads the default
        }
        entries.push_back(
            {decode_hosts ? percent_decode(host, false, "host name") : std::string(host),
             std::string(port)});
    }
    return entries;
}

void emit_hosts(const std::vector<HostEntry>& entries, ParsedConnectionString& parsed) {
    std::vector<std::string> hosts;
    std::vector<std::string> ports;
    bool any_host = false;
    bool any_port = false;
    for (const auto& entry : entries) {
        hosts.push_back(entry.host);
        ports.push_back(entry.port);
        any_host = any_host || !entry.host.empty();
        any_port = any_port || !entry.port.empty();
    }
    if (any_host || entries.size() > 1) {
        parsed.parameters.emplace_back("host", join(hosts));
    }
    if (any_port) {
        parsed.parameters.emplace_back("port", join(ports));
    }
}

std::string percent_decode(std::string_view text, bool plus_is_space, std::string_view what) {
    std::string decoded;
    decoded.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%') {
            const int high = i + 2 < text.size() ? hex_value(text[i + 1]) : -1;
            const int low = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
            if (high < 0 || low < 0) {
                fail("invalid percent-encoding in the " + std::string(what));
            }
            if (high == 0 && low == 0) {
                fail("percent-encoded NUL (%00) in the " + std::string(what));
            }
            decoded += static_cast<char>(high * 16 + low);
            i += 2;
        } else if (plus_is_space && text[i] == '+') {
            decoded += ' ';
        } else {
            decoded += text[i];
        }
    }
    return decoded;
}

ParsedConnectionString parse_postgres_uri(std::string_view text) {
    ParsedConnectionString parsed;
    std::string_view rest = text.substr(text.find("://") + 3);
    const std::size_t question = rest.find('?');
    const std::string_view query =
        question == std::string_view::npos ? std::string_view() : rest.substr(question + 1);
    rest = rest.substr(0, question);
    const std::size_t slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    const std::string_view path =
        slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    // An unencoded "?" in a password starts the query early: the rest of the password would
    // then be read (and named in errors) as query parameters.
    // As libpq reads it: user info runs to the first '@' unless a '/' comes first.
    const std::size_t userinfo_end = text.find_first_of("@/", text.find("://") + 3);
    if (userinfo_end != std::string_view::npos && text[userinfo_end] == '@' &&
        authority.find('@') == std::string_view::npos) {
        fail(
            "\"@\" after \"?\"; percent-encode \"?\", \"@\" and \"/\" in user names and "
            "passwords (%3F, %40, %2F)");
    }
    if (path.find('@') != std::string_view::npos) {
        fail(
            "\"@\" after the host list; percent-encode \"@\" and \"/\" in user names and "
            "passwords (%40, %2F)");
    }

    std::string_view host_list = authority;
    if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
        const std::string_view userinfo = authority.substr(0, at);
        host_list = authority.substr(at + 1);
        const std::size_t colon = userinfo.find(':');
        const std::string user = percent_decode(userinfo.substr(0, colon), false, "user name");
        if (!user.empty()) {
            parsed.parameters.emplace_back("user", user);
        }
        if (colon != std::string_view::npos) {
            parsed.parameters.emplace_back(
                "password", percent_decode(userinfo.substr(colon + 1), false, "password"));
        }
    }
    if (!host_list.empty()) {
        emit_hosts(parse_host_list(host_list, true), parsed);
    }
    if (!path.empty()) {
        parsed.parameters.emplace_back("dbname", percent_decode(path, false, "database name"));
    }

    std::string previous;
    const auto tokens = query.empty() ? std::vector<std::string_view>() : split(query, '&');
    for (std::size_t n = 0; n < tokens.size(); ++n) {
        const std::string_view token = tokens[n];
        const std::size_t equals = token.find('=');
        if (equals == std::string_view::npos) {
            fail("URI query parameter " + std::to_string(n + 1) + " has no \"=\"");
        }
        std::string key = percent_decode(token.substr(0, equals), false, "query parameter name");
        std::string value = percent_decode(token.substr(equals + 1), false,
                                           "value of query parameter " + std::to_string(n + 1));
        if (key == "ssl") {
            // libpq's own URI extension: ssl=true means sslmode=require.
            if (value != "true") {
                fail("URI query parameter ssl only accepts \"true\"; use sslmode");
            }
            key = "sslmode";
            value = "require";
        } else if (!is_known_keyword(key)) {
            fail(unknown_parameter("URI query parameter", key, previous));
        }
        previous = key;
        parsed.parameters.emplace_back(std::move(key), std::move(value));
    }
    return parsed;
}

}  // namespace pg_ingest::detail
