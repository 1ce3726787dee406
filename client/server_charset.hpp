// The characters a database whose encoding is not UTF-8 can hold. The client sends text as
// UTF-8 and the server converts it; a character the database's encoding lacks fails the whole
// COPY there (22P05). The encoder checks it against this set instead, so write() refuses the
// row itself.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <pg_ingest/connection.hpp>

namespace pg_ingest {

class ServerCharset {
  public:
    // The server encoding's name, as server_encoding shows it ("LATIN1", "WIN1252").
    const std::string& name() const noexcept { return m_name; }
    // Whether the encoding holds code point `cp` (ASCII always).
    bool holds(std::uint32_t cp) const noexcept;
    // Offset in `utf8` (valid UTF-8) of the first character the encoding lacks, npos if none;
    // `length` receives its length in bytes.
    std::size_t first_unheld(std::string_view utf8, std::size_t& length) const noexcept;

    ServerCharset(std::string name, std::vector<std::uint32_t> code_points);

  private:
    std::string m_name;
    std::vector<std::uint32_t> m_code_points;  // sorted: the non-ASCII ones
};

namespace detail {

// The character set of `connection`'s database, read from the server once per database,
// server version and process (blocking, bounded by the connection's deadline). Null when there
// is nothing to check: UTF8, SQL_ASCII (any byte is taken), and the multibyte encodings (EUC_*,
// MULE_INTERNAL), whose tables are too large to read; for those a character the encoding lacks
// is still refused by the server, when the batch is sent. Also null (not cached) when the
// server will not say (convert() not allowed, a statement_timeout, ...). Inside a transaction
// block its probe queries run in a savepoint. Throws Error for a lost connection.
std::shared_ptr<const ServerCharset> server_charset(Connection& connection);

}  // namespace detail

}  // namespace pg_ingest
