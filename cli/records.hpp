// Reading CSV / text input and cutting it into batches on record boundaries, without parsing
// values: COPY does the parsing on the server; the client only needs to know where records end.
#pragma once

#include <array>
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

// A line end as PostgreSQL's COPY knows it. The first one of a stream decides the stream's: "\r\n",
// a "\r" not followed by "\n", or "\n"; a line end of another kind after it is an error.
enum class LineEnd { lf, crlf, cr };

// What a record holds besides data, as RecordScanner saw it.
struct RecordShape {
    // Line breaks inside the record in the style of its line end: carriage returns where that is
    // a CR, else line feeds (its physical lines - 1).
    std::uint64_t newlines = 0;
    std::uint64_t inner_lf = 0;  // line feeds inside quotes (csv) or escaped (text)
    std::uint64_t inner_cr = 0;  // carriage returns inside quotes (csv) or escaped (text)
    bool backslash_dot = false;  // text: an unescaped backslash followed by a dot
    // The first line end byte ('\r' or '\n') neither quoted nor escaped that is of another kind
    // than the source's line ends (which the server refuses); 0 for none.
    char stray = 0;
};

// Finds record ends as the server's COPY does (CopyReadLineText): a line end outside a quoted CSV
// field, or not escaped by a backslash in PostgreSQL's text format (where backslash-newline is
// data). The first such line end decides the source's kind (LF, CRLF or CR); afterwards only
// that kind ends a record (a stray LF in a CRLF source too, which the server refuses there), and
// other line end bytes are marked RecordShape::stray. Byte-oriented: safe for UTF-8 and every
// server encoding whose multibyte characters never contain the ASCII quote, backslash, CR or LF
// bytes (not SJIS/BIG5/GBK/UHC/GB18030 with backslash trail bytes).
class RecordScanner {
  public:
    RecordScanner(InputFormat format, char quote) : m_format(format), m_quote(quote) {
        m_stops['\n'] = m_stops['\r'] = true;
        m_stops[static_cast<unsigned char>(format == InputFormat::csv ? quote : '\\')] = true;
    }

    // Scans data[from..]; returns the offset just past the next record end, or npos when the
    // data ends inside a record. The quote/escape state carries over to the next call, which
    // must continue with the bytes that follow (at data.size() of this call). A CR at the end
    // of the data, while the source's line ends may be CRLF, waits for the next byte: a record
    // it turns out to end then ends at that call's `from`.
    std::size_t next_end(std::string_view data, std::size_t from);
    // The data has ended: true when a CR waiting for the next byte ended the last record there
    // (the source's first line end: a CR source, as the server decides at the end of its data).
    // In a CRLF source such a CR stays in the unterminated last record (it lacks only its LF).
    bool finish();
    // Newlines inside the record just ended (a CSV field with line breaks); 0 for most records.
    std::uint64_t inner_newlines() const { return m_last.newlines; }
    // The record just ended, and the one the data ended inside (after npos; its `newlines`
    // are not set: they depend on the line end it will be given).
    const RecordShape& shape() const { return m_last; }
    const RecordShape& pending() const { return m_current; }
    // Text format: the data scanned so far ends in an unescaped backslash.
    bool in_escape() const { return m_escaped; }
    // CSV: the data scanned so far ends inside a quoted field.
    bool in_quotes() const { return m_in_quotes; }
    // The source's line ends, once its first line end has been seen.
    std::optional<LineEnd> line_end() const { return m_line_end; }

  private:
    std::size_t end_record(std::size_t end, LineEnd kind);
    void mark_stray(char c) {
        if (m_current.stray == 0) {
            m_current.stray = c;
        }
    }

    InputFormat m_format;
    char m_quote;
    bool m_in_quotes = false;
    bool m_escaped = false;
    std::array<bool, 256> m_stops{};  // the bytes that may change the state
    bool m_cr_pending = false;        // the last byte scanned is a CR whose line end needs the next
    std::optional<LineEnd> m_line_end;
    RecordShape m_current;
    RecordShape m_last;
};

// Where one record came from, for messages and the reject file.
struct RecordOrigin {
    std::string source;    // file name, or "-" for stdin
    std::uint64_t record;  // 1-based data record number in that source (header excluded)
    std::uint64_t line;    // 1-based line number where the record starts
};

// "data.csv, line 7" ("stdin" for "-"; no line when it is 0), for messages.
std::string where(const RecordOrigin& origin);

// A run of complete records from one source, each ending in its line end: all in '\r' (CR) or all
// in '\n' (LF, CRLF).
struct Batch {
    std::string data;
    std::size_t source_index = 0;
    std::uint64_t first_record = 1;  // RecordOrigin::record of the first record
    std::uint64_t first_line = 1;    // RecordOrigin::line of the first record
    std::uint64_t records = 0;
    // (index in this batch, shape) for records with line breaks inside.
    std::vector<std::pair<std::uint64_t, RecordShape>> multiline;
    // The first record's line end ("\r\n" only with a CR neither quoted nor escaped): a COPY stream
    // starting with it has line ends of this kind. CR: every record of the batch ends in '\r'.
    LineEnd first_eol = LineEnd::lf;

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
    // complete_last_record()). Throws std::runtime_error on a read error; on a CSV source ending
    // inside a quoted field (unless the quote may be a multibyte character's byte); and in text
    // format (unless refused off) on a record holding an unescaped "\." (the server would end
    // the data there, or fail) and on a source ending in an unescaped backslash.
    bool next(Batch& batch, std::uint64_t max_records, std::size_t max_bytes);
    // Each source goes into COPY streams of its own (never one stream over several sources):
    // a last record without a line end gets its own source's. Set before the first next().
    void set_stream_per_source() { m_stream_per_source = true; }

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
    // Reads more of the current source into m_buffer (dropping consumed bytes first), taking
    // what look_ahead() read of it first; false at its end.
    bool fill();
    // Reads up to k_read_size more bytes of source `index` into `into`; false at its end.
    bool read_more(std::size_t index, std::string& into);
    // The line end of the first source after the current one that has a line end, reading ahead
    // as far as needed (kept in m_ahead, so that nothing is lost or read twice); nullopt when
    // none has one.
    std::optional<LineEnd> look_ahead();
    // The end of the next record in m_buffer, reading more as needed; npos at the end of the
    // source (an unterminated last record is then m_buffer[m_pos..]).
    std::size_t find_end();
    void end_source_at_marker(std::uint64_t marker_line);
    // Appends a line end to the current source's unterminated last record m_buffer[m_pos..],
    // which goes into `batch` (or starts the next one), and sets m_completed_eol.
    void complete_last_record(const Batch& batch);
    // "stdin" for "-": the name used in messages.
    const std::string& source_name() const;
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
    bool m_started = false;    // the current source's header has been handled
    bool m_eof = false;        // the current source has no more bytes
    bool m_completed = false;  // the current source's last record has been given a line end
    LineEnd m_completed_eol = LineEnd::lf;  // the line end it was given
    std::optional<LineEnd> m_header_eol;    // the current source's header line's line end
    // The line end of the first record read: where one COPY stream spans batches and sources,
    // the server decides the stream's line ends from it. Unset until a record is read.
    std::optional<LineEnd> m_input_eol;
    bool m_stream_per_source = false;
    // Per source: bytes read ahead by look_ahead() and not yet taken by fill(), and whether
    // that reached the source's end.
    std::vector<std::string> m_ahead;
    std::vector<bool> m_ahead_eof;
    std::string m_buffer;
    std::size_t m_pos = 0;   // start of the first unconsumed record in m_buffer
    std::size_t m_scan = 0;  // where scanning continues (bytes before it are inside a record)
    std::unique_ptr<RecordScanner> m_scanner;
    std::uint64_t m_next_record = 1;
    std::uint64_t m_next_line = 1;
    std::vector<std::string> m_warnings;
};

}  // namespace pg_ingest::cli
