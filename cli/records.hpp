// Reading CSV / text input and cutting it into batches on record boundaries, without parsing
// values: COPY does the parsing on the server; the client only needs to know where records end.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pg_ingest::cli {

enum class InputFormat { csv, text };

// What a record holds besides data, as RecordScanner saw it.
struct RecordShape {
    std::uint64_t newlines = 0;   // line feeds inside the record (its physical lines - 1)
    std::uint64_t quoted_cr = 0;  // csv: carriage returns inside quotes
    bool backslash_dot = false;   // text: an unescaped backslash followed by a dot
};

// Finds record ends: a newline outside a quoted CSV field, or a newline not escaped by a
// backslash in PostgreSQL's text format (where backslash-newline is data). Byte-oriented: safe
// for UTF-8 and every server encoding whose multibyte characters never contain the ASCII quote,
// backslash or newline bytes (not SJIS/BIG5/GBK/UHC/GB18030 with backslash trail bytes).
class RecordScanner {
  public:
    RecordScanner(InputFormat format, char quote) : m_format(format), m_quote(quote) {}

    // Scans data[from..]; returns the offset just past the next record end, or npos when the
    // data ends inside a record. The quote/escape state carries over to the next call, which
    // must continue with the bytes that follow (at data.size() of this call).
    std::size_t next_end(std::string_view data, std::size_t from);
    // Newlines inside the record just ended (a CSV field with line breaks); 0 for most records.
    std::uint64_t inner_newlines() const { return m_last.newlines; }
    // The record just ended, and the one the data ended inside (after npos).
    const RecordShape& shape() const { return m_last; }
    const RecordShape& pending() const { return m_current; }
    // Text format: the data scanned so far ends in an unescaped backslash.
    bool in_escape() const { return m_escaped; }

  private:
    InputFormat m_format;
    char m_quote;
    bool m_in_quotes = false;
    bool m_escaped = false;
    RecordShape m_current;
    RecordShape m_last;
};

// Where one record came from, for messages and the reject file.
struct RecordOrigin {
    std::string source;    // file name, or "-" for stdin
    std::uint64_t record;  // 1-based data record number in that source (header excluded)
    std::uint64_t line;    // 1-based line number where the record starts
};

// A run of complete records from one source, each ending in '\n'.
struct Batch {
    std::string data;
    std::size_t source_index = 0;
    std::uint64_t first_record = 1;  // RecordOrigin::record of the first record
    std::uint64_t first_line = 1;    // RecordOrigin::line of the first record
    std::uint64_t records = 0;
    // (index in this batch, shape) for records with line breaks inside.
    std::vector<std::pair<std::uint64_t, RecordShape>> multiline;
    // The first record ends in "\r\n" (a CR neither quoted nor escaped): a COPY stream starting
    // with it has CRLF line ends.
    bool first_crlf = false;

    // The origin of record `index` (0-based within the batch).
    RecordOrigin origin(const std::vector<std::string>& sources, std::uint64_t index) const;
};

// Reads the sources one after the other ("-" is stdin). Not thread-safe.
class InputReader {
  public:
    // Opens every source now, so that a missing file fails before anything is loaded; throws
    // std::runtime_error naming the file. `refuse_backslash_dot`: text format only, see next();
    // false where a backslash byte may end a multibyte character (SJIS and the like).
    InputReader(std::vector<std::string> sources, InputFormat format, char quote, bool header,
                bool refuse_backslash_dot = true);
    ~InputReader();
    InputReader(const InputReader&) = delete;
    InputReader& operator=(const InputReader&) = delete;

    // Fills `batch` with the next records of the current source: at most `max_records`, and no
    // more than `max_bytes` unless a single record is bigger. Returns false at the end of input.
    // A last record without a line end gets the one of the COPY stream it may go into (see
    // complete_last_record()). Throws std::runtime_error on a read error, and in text format
    // (unless refused off) on a record holding an unescaped "\." (the server would end the
    // data there, or fail) and on a source ending in an unescaped backslash.
    bool next(Batch& batch, std::uint64_t max_records, std::size_t max_bytes);

    // Total input size when every source is a regular file (for an ETA), else nullopt.
    std::optional<std::uint64_t> total_bytes() const { return m_total_bytes; }
    // Bytes read so far from all sources (header lines included).
    std::uint64_t bytes_read() const { return m_bytes_read; }
    const std::vector<std::string>& sources() const { return m_sources; }
    // Input that was not loaded, one message each: the lines after an end-of-data marker
    // ("\.") in a source, which ends that source.
    const std::vector<std::string>& warnings() const { return m_warnings; }
    // The source that is the file `dev`/`ino` (opened for reading), if any.
    std::optional<std::string> source_of(std::uint64_t dev, std::uint64_t ino) const;

  private:
    // Reads more of the current source into m_buffer (dropping consumed bytes first); false at
    // its end.
    bool fill();
    // The end of the next record in m_buffer, reading more as needed; npos at the end of the
    // source (an unterminated last record is then m_buffer[m_pos..]).
    std::size_t find_end();
    void end_source_at_marker(std::uint64_t marker_line);
    // Appends a line end to the current source's unterminated last record m_buffer[m_pos..],
    // which goes into `batch` (or starts the next one).
    void complete_last_record(const Batch& batch);
    // A backslash escapes the next byte: text format, unless a backslash byte may end a
    // multibyte character (refuse_backslash_dot off).
    bool backslashes_escape() const {
        return m_format == InputFormat::text && m_refuse_backslash_dot;
    }
    // Adds record m_buffer[m_pos, end) with `shape` to `batch`.
    void take(Batch& batch, std::size_t end, const RecordShape& shape);

    std::vector<std::string> m_sources;
    std::vector<std::FILE*> m_files;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> m_identities;  // st_dev, st_ino
    InputFormat m_format;
    char m_quote;
    bool m_header;
    bool m_refuse_backslash_dot;
    std::optional<std::uint64_t> m_total_bytes;
    std::uint64_t m_bytes_read = 0;

    std::size_t m_current = 0;
    bool m_started = false;      // the current source's header has been handled
    bool m_eof = false;          // the current source has no more bytes
    bool m_completed = false;    // the current source's last record has been given a line end
    bool m_header_crlf = false;  // the current source's header line ends in "\r\n"
    // The line end of the first record read: where one COPY stream spans batches and sources,
    // the server decides the stream's line ends from it. Unset until a record is read.
    std::optional<bool> m_input_crlf;
    std::string m_buffer;
    std::size_t m_pos = 0;   // start of the first unconsumed record in m_buffer
    std::size_t m_scan = 0;  // where scanning continues (bytes before it are inside a record)
    std::unique_ptr<RecordScanner> m_scanner;
    std::uint64_t m_next_record = 1;
    std::uint64_t m_next_line = 1;
    std::vector<std::string> m_warnings;
};

}  // namespace pg_ingest::cli
