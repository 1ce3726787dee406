// jdbc:postgresql: URLs → libpq keyword/value pairs, following pgjdbc's Driver.parseURL.
#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "connection_string.hpp"

namespace pg_ingest::detail {

namespace {

constexpr std::string_view k_jdbc_default_host = "localhost";
constexpr std::string_view k_jdbc_default_port = "5432";

bool parse_bool(std::string_view property, std::string_view value) {
    if (iequals(value, "true")) {
        return true;
    }
    if (iequals(value, "false")) {
        return false;
    }
    fail("JDBC property " + std::string(property) + " must be true or false");
}

// libpq splits "options" on whitespace; a backslash keeps a space or backslash literal.
std::string escape_option_value(std::string_view value) {
    std::string escaped;
    for (const char c : value) {
        if (std::isspace(static_cast<unsigned char>(c)) != 0 || c == '\\') {
            escaped += '\\';
        }
        escaped += c;
    }
    return escaped;
}

std::string lower(std::string_view text) {
    std::string result(text);
    std::transform(result.begin(), result.end(), result.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return result;
}

}  // namespace

ParsedConnectionString parse_jdbc_url(std::string_view text) {
    ParsedConnectionString parsed;
    std::string_view server = text.substr(std::string_view("jdbc:postgresql:").size());
    const std::size_t question = server.find('?');
    const std::string_view query =
        question == std::string_view::npos ? std::string_view() : server.substr(question + 1);
    server = server.substr(0, question);

    std::vector<HostEntry> entries;
    std::string_view database;
    if (server.substr(0, 2) == "//") {
        server.remove_prefix(2);
        if (std::count(server.begin(), server.end(), '/') > 1) {
            fail("too many \"/\" in the JDBC URL (percent-encode \"/\" as %2F)");
        }
        const std::size_t slash = server.find('/');
        if (slash == std::string_view::npos && !server.empty()) {
            fail(
                "the JDBC URL needs a \"/\" after the host list: "
                "jdbc:postgresql://host[:port]/database");
        }
        const std::string_view host_list = server.substr(0, slash);
        database = slash == std::string_view::npos ? std::string_view() : server.substr(slash + 1);
        if (host_list.find('@') != std::string_view::npos) {
            fail("JDBC URLs take no user:password@ part; pass ?user=...&password=...");
        }
        if (!host_list.empty()) {
            entries = parse_host_list(host_list, false);
        }
    } else if (!server.empty() && server.front() == '/') {
        fail(
            "malformed JDBC URL: expected jdbc:postgresql://host[:port]/database or "
            "jdbc:postgresql:database");
    } else {
        database = server;
    }
    if (entries.empty()) {
        entries.push_back({std::string(k_jdbc_default_host), ""});
    }
    for (std::size_t n = 0; n < entries.size(); ++n) {
        auto& entry = entries[n];
        if (entry.host.empty() && entry.port.empty()) {
            fail("host entry " + std::to_string(n + 1) + " of the JDBC URL is empty");
        }
        if (entry.host.empty()) {
            entry.host = std::string(k_jdbc_default_host);  // ":5433" means localhost, as pgjdbc
        }
        if (entry.port.empty()) {
            entry.port = std::string(k_jdbc_default_port);
        }
    }
    emit_hosts(entries, parsed);
    if (!database.empty()) {
        parsed.parameters.emplace_back("dbname", percent_decode(database, true, "database name"));
    }

    // Properties that are renamed one-to-one (matched ignoring case).
    static const std::map<std::string, std::string> renamed = {
        {"user", "user"},
        {"password", "password"},
        {"sslcert", "sslcert"},
        {"sslkey", "sslkey"},
        {"sslrootcert", "sslrootcert"},
        {"sslpassword", "sslpassword"},
        {"service", "service"},
        {"applicationname", "application_name"},
        {"channelbinding", "channel_binding"},
        {"gssencmode", "gssencmode"},
        {"kerberosservername", "krbsrvname"},
        {"requireauth", "require_auth"},
    };
    static const std::map<std::string, std::string> server_types = {
        {"any", "any"},
        {"primary", "primary"},
        {"master", "primary"},
        {"secondary", "standby"},
        {"standby", "standby"},
        {"slave", "standby"},
        {"prefersecondary", "prefer-standby"},
        {"preferstandby", "prefer-standby"},
        {"preferslave", "prefer-standby"},
    };
    const auto& ignored = ConnectionOptions::jdbc_ignored_properties();

    std::optional<std::string> sslmode;
    std::optional<bool> ssl;
    bool non_validating = false;  // sslfactory=org.postgresql.ssl.NonValidatingFactory
    std::optional<unsigned long> timeout;
    std::string options;       // derived from other properties
    std::string user_options;  // the "options" property: given twice, the last one wins (pgjdbc)
    std::string previous;
    for (const std::string_view token : split(query, '&')) {
        if (token.empty()) {
            continue;
        }
        const std::size_t equals = token.find('=');
        const std::string name(token.substr(0, equals));
        const std::string key = lower(name);
        const std::string value =
            equals == std::string_view::npos
                ? std::string()
                : percent_decode(token.substr(equals + 1), true, "value of JDBC property " + name);
        if (const auto found = renamed.find(key); found != renamed.end()) {
            if (!is_known_keyword(found->second)) {
                fail("JDBC property " + name + " needs a newer libpq (no \"" + found->second +
                     "\" keyword)");
            }
            parsed.parameters.emplace_back(found->second, value);
        } else if (key == "sslmode") {
            sslmode = lower(value);
        } else if (key == "sslfactory" && value.size() >= 20 &&
                   value.compare(value.size() - 20, 20, "NonValidatingFactory") == 0) {
            // pgjdbc's SSL without certificate checks (also its older ssl.jdbc4 one)
            non_validating = true;
        } else if (key == "ssl") {
            ssl = value.empty() || parse_bool(name, value);  // pgjdbc: bare "ssl" means true
        } else if (key == "connecttimeout" || key == "logintimeout") {
            if (value.empty() || value.size() > 9 ||
                !std::all_of(value.begin(), value.end(),
                             [](char c) { return c >= '0' && c <= '9'; })) {
                fail("JDBC property " + name + " must be a whole number of seconds");
            }
            // Both bound the connection attempt; the stricter one wins (0 means no limit).
            const unsigned long seconds = std::stoul(value);
            if (!timeout || *timeout == 0 || (seconds != 0 && seconds < *timeout)) {
                timeout = seconds;
            }
        } else if (key == "options") {
            user_options = value;
        } else if (key == "currentschema") {
            options += " -c search_path=" + escape_option_value(value);
        } else if (key == "readonly") {
            if (parse_bool(name, value)) {
                options += " -c default_transaction_read_only=on";
            }
        } else if (key == "targetservertype") {
            const auto type = server_types.find(lower(value));
            if (type == server_types.end()) {
                fail(
                    "JDBC property targetServerType: unsupported value (libpq knows any, "
                    "primary, standby, preferStandby)");
            }
            parsed.parameters.emplace_back("target_session_attrs", type->second);
        } else if (key == "tcpkeepalive") {
            parsed.parameters.emplace_back("keepalives", parse_bool(name, value) ? "1" : "0");
        } else if (std::find(ignored.begin(), ignored.end(), key) != ignored.end()) {
            parsed.ignored.push_back(name);
        } else {
            fail(unknown_parameter("JDBC property", name, previous));
        }
        previous = renamed.count(key) != 0 ? renamed.at(key) : key;
    }
    if (!sslmode && ssl) {
        // pgjdbc: ssl=true verifies the certificate and host name; ssl=false is its default.
        sslmode = *ssl ? "verify-full" : "prefer";
    }
    if (sslmode && non_validating && (*sslmode == "verify-ca" || *sslmode == "verify-full")) {
        // NonValidatingFactory encrypts without checking the certificate: libpq's require.
        sslmode = "require";
    }
    if (sslmode) {
        parsed.parameters.emplace_back("sslmode", *sslmode);
    }
    if (timeout) {
        parsed.parameters.emplace_back("connect_timeout", std::to_string(*timeout));
    }
    // The user's options first, so that currentSchema and readOnly (set after) take precedence.
    options = user_options + options;
    const std::size_t first = options.find_first_not_of(' ');
    if (first != std::string::npos) {
        parsed.parameters.emplace_back("options", options.substr(first));
    }
    return parsed;
}

}  // namespace pg_ingest::detail

namespace pg_ingest {

const std::vector<std::string>& ConnectionOptions::jdbc_ignored_properties() {
    // pgjdbc properties that tune the Java driver itself and have no libpq counterpart.
    static const std::vector<std::string> properties = {"adaptivefetch",
                                                        "adaptivefetchmaximum",
                                                        "adaptivefetchminimum",
                                                        "allowencodingchanges",
                                                        "assumeminserverversion",
                                                        "authenticationpluginclassname",
                                                        "autosave",
                                                        "binarytransfer",
                                                        "binarytransferdisable",
                                                        "binarytransferenable",
                                                        "cancelsignaltimeout",
                                                        "classloaderstrategy",
                                                        "cleanupsavepoints",
                                                        "connectexecutor",
                                                        "connectexecutorarg",
                                                        "convertbooleantonumeric",
                                                        "databasemetadatacachefields",
                                                        "databasemetadatacachefieldsmib",
                                                        "defaultrowfetchsize",
                                                        "disablecolumnsanitiser",
                                                        "escapesyntaxcallmode",
                                                        "flushcacheonddl",
                                                        "groupstartupparameters",
                                                        "gsslib",
                                                        "gssresponsetimeout",
                                                        "gssusedefaultcreds",
                                                        "hideunprivilegedobjects",
                                                        "hostrecheckseconds",
                                                        "jaasapplicationname",
                                                        "jaaslogin",
                                                        "loadbalancehosts",
                                                        "localsocketaddress",
                                                        "loggerfile",
                                                        "loggerlevel",
                                                        "logservererrordetail",
                                                        "logunclosedconnections",
                                                        "maxresultbuffer",
                                                        "maxsendbuffersize",
                                                        "preferquerymode",
                                                        "preparedstatementcachequeries",
                                                        "preparedstatementcachesizemib",
                                                        "preparethreshold",
                                                        "protocolversion",
                                                        "querytimeout",
                                                        "quotereturningidentifiers",
                                                        "readonlymode",
                                                        "receivebuffersize",
                                                        "replication",
                                                        "rewritebatchedinserts",
                                                        "rewritebatchedinsertssize",
                                                        "scrammaxiterations",
                                                        "sendbuffersize",
                                                        "socketfactory",
                                                        "socketfactoryarg",
                                                        "sockettimeout",
                                                        "sslfactory",
                                                        "sslfactoryarg",
                                                        "sslhostnameverifier",
                                                        "sslnegotiation",
                                                        "sslpasswordcallback",
                                                        "sslresponsetimeout",
                                                        "sspiserviceclass",
                                                        "stringtype",
                                                        "tcpnodelay",
                                                        "unknownlength",
                                                        "usespnego",
                                                        "xmlfactoryfactory"};
    return properties;
}

}  // namespace pg_ingest
