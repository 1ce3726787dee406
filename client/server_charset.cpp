#include "server_charset.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include <libpq-fe.h>

#include <pg_ingest/error.hpp>

namespace pg_ingest {

ServerCharset::ServerCharset(std::string name, std::vector<std::uint32_t> code_points)
    : m_name(std::move(name)), m_code_points(std::move(code_points)) {
    std::sort(m_code_points.begin(), m_code_points.end());
}

bool ServerCharset::holds(std::uint32_t cp) const noexcept {
    return cp < 0x80 || std::binary_search(m_code_points.begin(), m_code_points.end(), cp);
}

std::size_t ServerCharset::first_unheld(std::string_view utf8, std::size_t& length) const noexcept {
    std::size_t i = 0;
    while (i < utf8.size()) {
        const auto c = static_cast<unsigned char>(utf8[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        const std::size_t n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
        std::uint32_t cp = n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
        for (std::size_t k = 1; k < n && i + k < utf8.size(); ++k) {
            cp = (cp << 6) | (static_cast<unsigned char>(utf8[i + k]) & 0x3F);
        }
        if (!holds(cp)) {
            length = std::min(n, utf8.size() - i);
            return i;
        }
        i += n;
    }
    return std::string_view::npos;
}

namespace detail {

namespace {

// The code point of one UTF-8 character written in hex ("c3a9").
std::optional<std::uint32_t> code_point_of_hex(const std::string& hex) {
    if (hex.empty() || hex.size() % 2 != 0 || hex.size() > 8 ||
        hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
        return std::nullopt;
    }
    std::string bytes;
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    }
    const auto c = static_cast<unsigned char>(bytes[0]);
    const std::size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
    if (bytes.size() != n) {
        return std::nullopt;  // not one character: nothing the encoder could match
    }
    std::uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (std::size_t k = 1; k < n; ++k) {
        cp = (cp << 6) | (static_cast<unsigned char>(bytes[k]) & 0x3F);
    }
    return cp;
}

// encode(..., 'hex'), not bytea output: bytea_output = 'escape' would print octal.
constexpr const char* k_probe_all =
    "SELECT pg_catalog.encode(pg_catalog.convert(pg_catalog.decode(pg_catalog.lpad("
    "pg_catalog.to_hex(b), 2, '0'), 'hex'), $1, 'UTF8'), 'hex') "
    "FROM pg_catalog.generate_series(128, 255) b";
constexpr const char* k_probe_one =
    "SELECT pg_catalog.encode(pg_catalog.convert(pg_catalog.decode(pg_catalog.lpad("
    "pg_catalog.to_hex($2::int), 2, '0'), 'hex'), $1, 'UTF8'), 'hex')";

enum class Probe { answered, undefined, failed };

// Runs `probe` into `result`. `undefined`: the server says a byte has no character (22P05, or
// 22021); `failed`: any other error on a working session (no privilege on convert(), a
// statement_timeout, ...). An enclosing transaction is left as it was. A lost session throws.
Probe try_probe(Connection& connection, bool in_transaction, const std::function<Result()>& probe,
                std::optional<Result>& result) {
    if (in_transaction) {
        connection.execute("SAVEPOINT pg_ingest_charset_probe");
    }
    try {
        result = probe();
        if (in_transaction) {
            connection.execute("RELEASE SAVEPOINT pg_ingest_charset_probe");
        }
        return Probe::answered;
    } catch (const Error& error) {
        if (!error.connection_usable()) {
            throw;
        }
        if (in_transaction) {
            connection.execute(
                "ROLLBACK TO SAVEPOINT pg_ingest_charset_probe; "
                "RELEASE SAVEPOINT pg_ingest_charset_probe");
        }
        return error.sqlstate() == "22P05" || error.sqlstate() == "22021" ? Probe::undefined
                                                                          : Probe::failed;
    }
}

// The non-ASCII code points of single-byte `encoding`; nullopt when the server would not say.
std::optional<std::vector<std::uint32_t>> read_code_points(Connection& connection,
                                                           const std::string& encoding) {
    auto* conn = static_cast<PGconn*>(connection.native_handle());
    const bool in_transaction = conn && PQtransactionStatus(conn) == PQTRANS_INTRANS;
    std::vector<std::uint32_t> out;
    auto take = [&](const Result& result) {
        for (std::size_t r = 0; r < result.rows(); ++r) {
            if (const auto hex = result.get(r, 0)) {
                if (const auto cp = code_point_of_hex(*hex)) {
                    out.push_back(*cp);
                }
            }
        }
    };
    std::optional<Result> result;
    const Probe all = try_probe(
        connection, in_transaction,
        [&] { return connection.execute_params(k_probe_all, {encoding}); }, result);
    if (all == Probe::failed) {
        return std::nullopt;
    }
    if (all == Probe::answered) {
        take(*result);
        return out;
    }
    // Some byte has no character (WIN1252's 0x81, ISO-8859-3's 0xA5, ...): one at a time.
    for (int b = 128; b < 256; ++b) {
        const Probe one = try_probe(
            connection, in_transaction,
            [&] {
                return connection.execute_params(k_probe_one, {encoding, std::to_string(b)});
            },
            result);
        if (one == Probe::failed) {
            return std::nullopt;
        }
        if (one == Probe::answered) {
            take(*result);
        }
    }
    return out;
}

}  // namespace

std::shared_ptr<const ServerCharset> server_charset(Connection& connection) {
    auto* conn = static_cast<PGconn*>(connection.native_handle());
    const char* reported = conn ? PQparameterStatus(conn, "server_encoding") : nullptr;
    if (reported == nullptr) {
        return nullptr;
    }
    const std::string encoding(reported);
    static const char* const k_unchecked[] = {"UTF8",         "SQL_ASCII",    "EUC_JP",
                                              "EUC_CN",       "EUC_KR",       "EUC_TW",
                                              "EUC_JIS_2004", "MULE_INTERNAL"};
    for (const char* name : k_unchecked) {
        if (encoding == name) {
            return nullptr;
        }
    }
    // Per database: the conversion is the database's default one (CREATE DEFAULT CONVERSION can
    // change it), and its tables come with the server's version.
    const char* database = PQdb(conn);
    const std::string key =
        encoding + '/' + std::to_string(PQserverVersion(conn)) + '/' + (database ? database : "");
    static std::mutex mutex;
    static std::map<std::string, std::shared_ptr<const ServerCharset>> cache;
    {
        std::lock_guard<std::mutex> lock(mutex);
        if (const auto found = cache.find(key); found != cache.end()) {
            return found->second;
        }
    }
    // Read outside the lock (it blocks on the server); two threads may both read it once.
    auto code_points = read_code_points(connection, encoding);
    if (!code_points || code_points->empty()) {
        // The server did not say (or said nothing plausible: every single-byte encoding has
        // characters above ASCII): nothing is checked, the server refuses such a character when
        // the batch is sent, and the next schema load asks again.
        return nullptr;
    }
    auto charset = std::make_shared<const ServerCharset>(encoding, std::move(*code_points));
    std::lock_guard<std::mutex> lock(mutex);
    return cache.emplace(key, std::move(charset)).first->second;
}

}  // namespace detail

}  // namespace pg_ingest
