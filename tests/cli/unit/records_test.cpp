// Cutting CSV / text input into batches on record boundaries.
#include <cstdio>
#include <fstream>
#include <string>

#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include "records.hpp"

using namespace pg_ingest::cli;

namespace {

// A temporary file holding `content`, removed at scope exit.
struct TempFile {
    explicit TempFile(const std::string& content) {
        char name[] = "/tmp/pg_ingest_records_XXXXXX";
        const int fd = ::mkstemp(name);
        BOOST_REQUIRE(fd >= 0);
        ::close(fd);
        path = name;
        std::ofstream(path, std::ios::binary) << content;
    }
    ~TempFile() { std::remove(path.c_str()); }
    std::string path;
};

std::vector<Batch> all_batches(InputReader& reader, std::uint64_t records, std::size_t bytes) {
    std::vector<Batch> batches;
    Batch batch;
    while (reader.next(batch, records, bytes)) {
        batches.push_back(batch);
    }
    return batches;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(records)

BOOST_AUTO_TEST_CASE(csv_quoted_newlines_do_not_end_records) {
    RecordScanner scanner(InputFormat::csv, '"');
    const std::string data = "1,\"a\nb\"\n2,\"say \"\"x\"\"\"\n3,c";
    const auto first = scanner.next_end(data, 0);
    BOOST_TEST(first == data.find("\n2") + 1);
    BOOST_TEST(scanner.inner_newlines() == 1u);
    const auto second = scanner.next_end(data, first);
    BOOST_TEST(data.substr(first, second - first) == "2,\"say \"\"x\"\"\"\n");
    BOOST_TEST(scanner.inner_newlines() == 0u);
    BOOST_TEST(scanner.next_end(data, second) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(text_backslash_newline_is_data_and_state_carries_over) {
    RecordScanner scanner(InputFormat::text, '"');
    // Split in the middle of an escape: the state must carry into the next call.
    const std::string part1 = "1\ta\\";
    BOOST_TEST(scanner.next_end(part1, 0) == std::string::npos);
    const std::string whole = part1 + "\nb\n2\tc\n";
    const auto end = scanner.next_end(whole, part1.size());
    BOOST_TEST(whole.substr(0, end) == "1\ta\\\nb\n");
    BOOST_TEST(scanner.inner_newlines() == 1u);
    // Quotes mean nothing in text format.
    RecordScanner text(InputFormat::text, '"');
    BOOST_TEST(text.next_end("\"a\n\"\n", 0) == 3u);
}

BOOST_AUTO_TEST_CASE(batches_respect_record_limits_header_and_origins) {
    const std::string content = "id,v\n1,a\n2,\"x\ny\"\n3,c\n4,d\n5,e";  // no final newline
    TempFile file(content);
    InputReader reader({file.path}, InputFormat::csv, '"', true);
    BOOST_TEST(reader.total_bytes().value() == content.size());
    const auto batches = all_batches(reader, 2, 1 << 20);
    BOOST_TEST_REQUIRE(batches.size() == 3u);
    BOOST_TEST(batches[0].data == "1,a\n2,\"x\ny\"\n");
    BOOST_TEST(batches[1].data == "3,c\n4,d\n");
    BOOST_TEST(batches[2].data == "5,e\n");
    BOOST_TEST(batches[0].first_record == 1u);
    BOOST_TEST(batches[1].first_record == 3u);
    // Record 3 starts on line 5: header, record 1, two lines of record 2.
    const auto origin = batches[1].origin(reader.sources(), 0);
    BOOST_TEST(origin.record == 3u);
    BOOST_TEST(origin.line == 5u);
    BOOST_TEST(batches[0].origin(reader.sources(), 1).line == 3u);
    BOOST_TEST(batches[2].origin(reader.sources(), 0).line == 7u);
    BOOST_TEST(reader.bytes_read() == content.size());
}

BOOST_AUTO_TEST_CASE(byte_budget_never_splits_a_record_and_batches_stay_in_one_source) {
    TempFile a("aaaa\nbbbb\ncccc\n");
    TempFile b("dd\n");
    InputReader reader({a.path, b.path}, InputFormat::text, '"', false);
    const auto batches = all_batches(reader, 100, 12);
    BOOST_TEST_REQUIRE(batches.size() == 3u);
    BOOST_TEST(batches[0].data == "aaaa\nbbbb\n");
    BOOST_TEST(batches[1].data == "cccc\n");
    BOOST_TEST(batches[2].data == "dd\n");
    BOOST_TEST(batches[2].source_index == 1u);
    BOOST_TEST(batches[2].first_record == 1u);
}

BOOST_AUTO_TEST_CASE(large_input_crosses_read_buffers_without_losing_bytes) {
    std::string content;
    for (int i = 0; i < 200000; ++i) {
        content += std::to_string(i) + ",\"multi\nline " + std::to_string(i) + "\"\n";
    }
    TempFile file(content);
    InputReader reader({file.path}, InputFormat::csv, '"', false);
    std::string joined;
    std::uint64_t records = 0;
    Batch batch;
    while (reader.next(batch, 7777, 1 << 30)) {
        joined += batch.data;
        records += batch.records;
    }
    BOOST_TEST(records == 200000u);
    BOOST_TEST(joined == content);
}

BOOST_AUTO_TEST_CASE(missing_file_fails_before_reading) {
    BOOST_CHECK_THROW(InputReader({"/nonexistent/x.csv"}, InputFormat::csv, '"', false),
                      std::runtime_error);
}

BOOST_AUTO_TEST_CASE(header_only_and_empty_files_yield_no_records) {
    TempFile header_only("id,v\n");
    TempFile empty("");
    InputReader reader({header_only.path, empty.path}, InputFormat::csv, '"', true);
    Batch batch;
    BOOST_TEST(!reader.next(batch, 10, 1 << 20));
}

// The line end given to a last record without one: the one of the COPY stream it goes into (the
// server takes it from the stream's first line and refuses a record ended otherwise).
BOOST_AUTO_TEST_CASE(last_record_without_line_end_gets_the_streams_line_end) {
    TempFile crlf("1,a\r\n2,b\r\n3,c");
    TempFile lf("1,a\n2,b");
    TempFile single("9,z");
    TempFile quoted("1,\"x\r\ny\"\r\n2,\"p\r\nq\"");
    TempFile quoted_lf("1,\"x\r\ny\"\n2,\"p\r\nq\"");
    TempFile bare_cr("1,a\n2,b\r");
    const auto data_of = [](const std::vector<std::string>& sources, std::uint64_t records,
                            bool header = false) {
        InputReader reader(sources, InputFormat::csv, '"', header);
        std::string data;
        for (const Batch& batch : all_batches(reader, records, 1 << 20)) {
            data += batch.data + "|";
        }
        return data;
    };
    BOOST_TEST(data_of({crlf.path}, 100) == "1,a\r\n2,b\r\n3,c\r\n|");
    // Alone in its batch: it takes the first record's line end (one COPY may span batches).
    BOOST_TEST(data_of({crlf.path}, 2) == "1,a\r\n2,b\r\n|3,c\r\n|");
    BOOST_TEST(data_of({lf.path}, 100) == "1,a\n2,b\n|");
    // A single record: LF; after a CRLF source, in the same COPY stream, CRLF.
    BOOST_TEST(data_of({single.path}, 100) == "9,z\n|");
    BOOST_TEST(data_of({crlf.path, single.path}, 100) == "1,a\r\n2,b\r\n3,c\r\n|9,z\r\n|");
    BOOST_TEST(data_of({lf.path, single.path}, 100) == "1,a\n2,b\n|9,z\n|");
    // A quoted CRLF is data: only the line ends outside quotes count.
    BOOST_TEST(data_of({quoted.path}, 100) == "1,\"x\r\ny\"\r\n2,\"p\r\nq\"\r\n|");
    BOOST_TEST(data_of({quoted_lf.path}, 100) == "1,\"x\r\ny\"\n2,\"p\r\nq\"\n|");
    // A record ending in a bare CR lacks only the LF of its CRLF.
    BOOST_TEST(data_of({bare_cr.path}, 100) == "1,a\n2,b\r\n|");
    // With a header and one record: the header's line end.
    TempFile header_crlf("id,v\r\n1,a");
    BOOST_TEST(data_of({header_crlf.path}, 100, true) == "1,a\r\n|");
    // Moved to the next batch by the byte budget: completed once.
    InputReader reader({crlf.path}, InputFormat::csv, '"', false);
    const auto batches = all_batches(reader, 100, 11);
    BOOST_TEST_REQUIRE(batches.size() == 2u);
    BOOST_TEST(batches[0].data == "1,a\r\n2,b\r\n");
    BOOST_TEST(batches[1].data == "3,c\r\n");
    BOOST_TEST((batches[1].first_eol == LineEnd::crlf));
}

BOOST_AUTO_TEST_CASE(text_line_ends_follow_backslash_escapes) {
    const auto data_of = [](const std::vector<std::string>& sources) {
        InputReader reader(sources, InputFormat::text, '"', false);
        std::string data;
        for (const Batch& batch : all_batches(reader, 100, 1 << 20)) {
            data += batch.data + "|";
        }
        return data;
    };
    // An escaped CR before the LF is data: the server's stream has LF line ends then.
    TempFile escaped_cr("1\ta\\\r\n2\tb");
    BOOST_TEST(data_of({escaped_cr.path}) == "1\ta\\\r\n2\tb\n|");
    TempFile crlf("1\ta\\\\\r\n2\tb");
    BOOST_TEST(data_of({crlf.path}) == "1\ta\\\\\r\n2\tb\r\n|");
    // An escaped backslash at the end is data; so is an escaped CR, which gets a whole line end.
    TempFile escaped_backslash("1\ta\r\n2\tb\\\\");
    BOOST_TEST(data_of({escaped_backslash.path}) == "1\ta\r\n2\tb\\\\\r\n|");
    TempFile ends_escaped_cr("1\ta\r\n2\tb\\\r");
    BOOST_TEST(data_of({ends_escaped_cr.path}) == "1\ta\r\n2\tb\\\r\r\n|");
    // A backslash-newline at the end is data too: the record still needs its line end, or the
    // next source's first record would join it.
    TempFile escaped_newline("1\ta\\\n");
    TempFile next("2\tb\n");
    BOOST_TEST(data_of({escaped_newline.path, next.path}) == "1\ta\\\n\n|2\tb\n|");
}

BOOST_AUTO_TEST_CASE(text_source_ending_in_a_lone_backslash_is_refused) {
    TempFile lone("1\ta\n2\tb\\\nc\\");
    InputReader reader({lone.path}, InputFormat::text, '"', false);
    Batch batch;
    try {
        reader.next(batch, 100, 1 << 20);
        BOOST_FAIL("accepted");
    } catch (const std::runtime_error& error) {
        // Named at the line holding the backslash (the record starts on line 2).
        BOOST_TEST(std::string(error.what()) ==
                   lone.path +
                       ", line 3: a lone backslash ends the data: in text format it escapes the "
                       "next character and none follows (write a backslash in data as \\\\)");
    }
    // Where a backslash byte may end a multibyte character, the reader cannot tell.
    InputReader trail_bytes({lone.path}, InputFormat::text, '"', false, false);
    BOOST_TEST_REQUIRE(trail_bytes.next(batch, 100, 1 << 20));
    BOOST_TEST(batch.data == "1\ta\n2\tb\\\nc\\\n");
    // In CSV a backslash is data.
    InputReader csv({lone.path}, InputFormat::csv, '"', false);
    BOOST_TEST_REQUIRE(csv.next(batch, 100, 1 << 20));
    BOOST_TEST(batch.data == "1\ta\n2\tb\\\nc\\\n");
}

// The first line end decides a source's kind, as the server decides a stream's: "\r\n" CRLF, a
// "\r" not followed by "\n" CR, "\n" LF. Afterwards only that kind ends a record; the others are
// marked stray (the server refuses them), quoted (CSV) and escaped (text) ones are data.
BOOST_AUTO_TEST_CASE(scanner_takes_the_line_end_kind_from_the_first_line_end) {
    {
        RecordScanner scanner(InputFormat::csv, '"');
        const std::string data = "1,a\r2,\"x\ry\nz\"\r3,c\n4\r";
        const auto first = scanner.next_end(data, 0);
        BOOST_TEST(first == 4u);
        BOOST_TEST((scanner.line_end() == LineEnd::cr));
        const auto second = scanner.next_end(data, first);
        BOOST_TEST(data.substr(first, second - first) == "2,\"x\ry\nz\"\r");
        BOOST_TEST(scanner.inner_newlines() == 1u);  // the quoted CR: lines in the CR style
        BOOST_TEST(scanner.shape().inner_lf == 1u);
        BOOST_TEST(scanner.shape().stray == 0);
        const auto third = scanner.next_end(data, second);
        BOOST_TEST(data.substr(second, third - second) == "3,c\n4\r");  // an LF ends nothing
        BOOST_TEST(scanner.shape().stray == '\n');
        BOOST_TEST(scanner.next_end(data, third) == std::string::npos);
    }
    {
        RecordScanner scanner(InputFormat::csv, '"');
        const std::string data = "1,a\r\n2,b\rc\r\n3,\"x\r\"\n4,d\r\n";
        BOOST_TEST(scanner.next_end(data, 0) == 5u);
        BOOST_TEST((scanner.line_end() == LineEnd::crlf));
        const auto second = scanner.next_end(data, 5);
        BOOST_TEST(data.substr(5, second - 5) == "2,b\rc\r\n");
        BOOST_TEST(scanner.shape().stray == '\r');  // a bare CR in a CRLF source
        // An LF without its CR (the CR is quoted) still ends the record, as for the server.
        const auto third = scanner.next_end(data, second);
        BOOST_TEST(data.substr(second, third - second) == "3,\"x\r\"\n");
        BOOST_TEST(scanner.shape().stray == '\n');
        BOOST_TEST(scanner.inner_newlines() == 0u);
        BOOST_TEST(scanner.next_end(data, third) == data.size());
        BOOST_TEST(scanner.shape().stray == 0);
    }
    {
        RecordScanner scanner(InputFormat::csv, '"');
        const std::string data = "1,a\n2,b\r\n";
        BOOST_TEST(scanner.next_end(data, 0) == 4u);
        BOOST_TEST((scanner.line_end() == LineEnd::lf));
        BOOST_TEST(scanner.next_end(data, 4) == data.size());
        BOOST_TEST(scanner.shape().stray == '\r');
    }
    {
        // Text: an escaped CR is data; "\\\r\n" first decides LF, as for the server.
        RecordScanner scanner(InputFormat::text, '"');
        const std::string data = "1\ta\\\r\n2\tb\n";
        BOOST_TEST(scanner.next_end(data, 0) == 6u);
        BOOST_TEST((scanner.line_end() == LineEnd::lf));
        BOOST_TEST(scanner.shape().stray == 0);
        BOOST_TEST(scanner.shape().inner_cr == 1u);
        BOOST_TEST(scanner.inner_newlines() == 0u);
        RecordScanner cr(InputFormat::text, '"');
        const std::string cr_data = "1\ta\\\rb\\\nc\r2\r";
        BOOST_TEST(cr.next_end(cr_data, 0) == 10u);
        BOOST_TEST((cr.line_end() == LineEnd::cr));
        BOOST_TEST(cr.inner_newlines() == 1u);
        BOOST_TEST(cr.shape().stray == 0);  // an escaped LF is data in a CR source too
        // In a CRLF source the same "\\\r\n" is an LF without its CR.
        RecordScanner crlf(InputFormat::text, '"');
        const std::string crlf_data = "0\tz\r\n1\ta\\\r\n";
        BOOST_TEST(crlf.next_end(crlf_data, 0) == 5u);
        BOOST_TEST(crlf.next_end(crlf_data, 5) == crlf_data.size());
        BOOST_TEST(crlf.shape().stray == '\n');
    }
}

// A CR that ends the data scanned so far needs the next byte (CRLF or CR); at the end of the
// data it is a CR line end, unless the source is CRLF (then the reader gives it its LF).
BOOST_AUTO_TEST_CASE(scanner_waits_for_the_byte_after_a_final_cr) {
    RecordScanner cr(InputFormat::csv, '"');
    BOOST_TEST(cr.next_end("1,a\r", 0) == std::string::npos);
    BOOST_TEST(!cr.line_end());
    BOOST_TEST(cr.next_end("1,a\r2,b\r", 4) == 4u);
    BOOST_TEST((cr.line_end() == LineEnd::cr));
    RecordScanner crlf(InputFormat::csv, '"');
    BOOST_TEST(crlf.next_end("1,a\r", 0) == std::string::npos);
    BOOST_TEST(crlf.next_end("1,a\r\n2,b\r", 4) == 5u);
    BOOST_TEST((crlf.line_end() == LineEnd::crlf));
    BOOST_TEST(crlf.next_end("1,a\r\n2,b\r", 5) == std::string::npos);
    BOOST_TEST(!crlf.finish());
    BOOST_TEST(crlf.pending().stray == 0);
    RecordScanner last(InputFormat::csv, '"');
    BOOST_TEST(last.next_end("1,a\r", 0) == std::string::npos);
    BOOST_TEST(last.finish());
    BOOST_TEST((last.line_end() == LineEnd::cr));
    RecordScanner none(InputFormat::csv, '"');
    BOOST_TEST(none.next_end("1,a", 0) == std::string::npos);
    BOOST_TEST(!none.finish());
    BOOST_TEST(!none.line_end());
}

BOOST_AUTO_TEST_CASE(cr_sources_are_cut_into_records_and_counted_in_cr_lines) {
    const std::string content = "id,v\r1,a\r2,\"x\ry\"\r3,\"p\nq\"\r4,d\r5,e";
    TempFile file(content);
    InputReader reader({file.path}, InputFormat::csv, '"', true);
    const auto batches = all_batches(reader, 2, 1 << 20);
    BOOST_TEST_REQUIRE(batches.size() == 3u);
    BOOST_TEST(batches[0].data == "1,a\r2,\"x\ry\"\r");
    BOOST_TEST(batches[1].data == "3,\"p\nq\"\r4,d\r");
    BOOST_TEST(batches[2].data == "5,e\r");  // the source's line end
    for (const Batch& batch : batches) {
        BOOST_TEST((batch.first_eol == LineEnd::cr));
    }
    // Record 3 starts on line 5 (header, record 1, two lines of record 2); the quoted LF of
    // record 3 is no CR line break: record 5 starts on line 7.
    BOOST_TEST(batches[1].origin(reader.sources(), 0).line == 5u);
    BOOST_TEST(batches[1].origin(reader.sources(), 1).line == 6u);
    BOOST_TEST(batches[2].origin(reader.sources(), 0).line == 7u);
    BOOST_TEST(reader.bytes_read() == content.size());
    // Text: an escaped CR is data, and an end-of-data marker ends the source, its lines counted
    // in CRs.
    TempFile text("1\ta\\\rb\r\\.\r2\tc\r3\td\r");
    InputReader text_reader({text.path}, InputFormat::text, '"', false);
    const auto text_batches = all_batches(text_reader, 100, 1 << 20);
    BOOST_TEST_REQUIRE(text_batches.size() == 1u);
    BOOST_TEST(text_batches[0].data == "1\ta\\\rb\r");
    BOOST_TEST_REQUIRE(text_reader.warnings().size() == 1u);
    BOOST_TEST(text_reader.warnings()[0] ==
               text.path +
                   ", line 3: end-of-data marker \\. ends the input there; the 2 line(s) after it "
                   "were not loaded");
}

// A CR as the last byte of a read buffer: CRLF or CR is known only from the next read.
BOOST_AUTO_TEST_CASE(cr_at_the_end_of_a_read_buffer) {
    const std::size_t read_size = 1 << 20;  // InputReader's
    struct Case {
        std::string before;  // records before the one whose CR ends the first read
        std::string after;   // what follows that CR
        LineEnd eol;
        std::uint64_t records;
    };
    const std::vector<Case> cases = {
        {"", "\n1,a\r\n2,b\r\n", LineEnd::crlf, 3},  // the first line end: CRLF
        {"", "1,a\r2,b\r", LineEnd::cr, 3},          // the first line end: CR
        {"0,z\r\n", "\n1,a\r\n", LineEnd::crlf, 3},  // in a CRLF source
        {"0,z\r", "1,a\r", LineEnd::cr, 3},          // in a CR source: no waiting
    };
    for (const Case& c : cases) {
        std::string content = c.before + "9,";
        content += std::string(read_size - 1 - content.size(), 'x') + "\r" + c.after;
        BOOST_TEST_REQUIRE(content[read_size - 1] == '\r');
        TempFile file(content);
        InputReader reader({file.path}, InputFormat::csv, '"', false);
        std::string joined;
        std::uint64_t records = 0;
        Batch batch;
        while (reader.next(batch, 1, 1 << 30)) {
            joined += batch.data;
            ++records;
            BOOST_TEST((batch.first_eol == c.eol));
        }
        BOOST_TEST(joined == content);
        BOOST_TEST(records == c.records);
    }
}

// A CSV source ending inside quotes: the line end added would be quoted data, and the next
// source's lines would join the field. Refused, naming the line where the record starts.
BOOST_AUTO_TEST_CASE(csv_source_ending_inside_quotes_is_refused) {
    TempFile open("1,a\n2,\"open\nstill open\n");
    TempFile next("x\",3\n4,d\n");
    InputReader reader({open.path, next.path}, InputFormat::csv, '"', false);
    Batch batch;
    try {
        reader.next(batch, 100, 1 << 20);
        BOOST_FAIL("accepted");
    } catch (const std::runtime_error& error) {
        BOOST_TEST(std::string(error.what()) ==
                   open.path +
                       ", line 2: unterminated CSV quoted field: the data ends inside a quoted "
                       "field of the record that starts here (a quote in a quoted field is "
                       "written twice)");
    }
    // Batches before it are given out first.
    InputReader batched({open.path}, InputFormat::csv, '"', false);
    BOOST_TEST_REQUIRE(batched.next(batch, 1, 1 << 20));
    BOOST_TEST(batch.data == "1,a\n");
    BOOST_CHECK_THROW(batched.next(batch, 1, 1 << 20), std::runtime_error);
    // In CR lines.
    TempFile cr("1,a\r2,b\r3,\"c\r");
    InputReader cr_reader({cr.path}, InputFormat::csv, '"', false);
    try {
        cr_reader.next(batch, 100, 1 << 20);
        BOOST_FAIL("accepted");
    } catch (const std::runtime_error& error) {
        BOOST_TEST(std::string(error.what()).rfind(cr.path + ", line 3: unterminated", 0) == 0);
    }
    // Not where the quote may be a byte of a multibyte character (SJIS and the like); a quote
    // below 0x40 never is.
    InputReader trail_bytes({open.path}, InputFormat::csv, '@', false, false);
    BOOST_TEST_REQUIRE(trail_bytes.next(batch, 100, 1 << 20));
    TempFile at_open("1,@open\n");
    InputReader at_reader({at_open.path}, InputFormat::csv, '@', false, false);
    BOOST_TEST_REQUIRE(at_reader.next(batch, 100, 1 << 20));
    BOOST_TEST(batch.data == "1,@open\n\n");
    InputReader quote_reader({open.path}, InputFormat::csv, '"', false, false);
    BOOST_CHECK_THROW(quote_reader.next(batch, 100, 1 << 20), std::runtime_error);
    // A closed quote is fine, a text source is not CSV.
    TempFile closed("1,\"a\nb\"");
    InputReader closed_reader({closed.path}, InputFormat::csv, '"', false);
    BOOST_TEST_REQUIRE(closed_reader.next(batch, 100, 1 << 20));
    BOOST_TEST(batch.data == "1,\"a\nb\"\n");
    InputReader text_reader({open.path}, InputFormat::text, '"', false);
    BOOST_TEST_REQUIRE(text_reader.next(batch, 100, 1 << 20));
}

// The first record read has no line end, and no header tells the stream's: it takes the line
// end of the next source that has one (read ahead, nothing lost or read twice), else LF.
BOOST_AUTO_TEST_CASE(first_record_without_line_end_takes_the_next_sources_line_end) {
    TempFile single("9,z");
    TempFile single2("8,\"y\r\nx\"");
    TempFile empty("");
    TempFile crlf("1,a\r\n2,b\r\n");
    TempFile cr("1,a\r2,b\r");
    TempFile lf("1,a\n");
    TempFile last_cr("1,a\r");
    const auto data_of = [](const std::vector<std::string>& sources, std::uint64_t records) {
        InputReader reader(sources, InputFormat::csv, '"', false);
        std::string data;
        std::uint64_t size = 0;
        for (const Batch& batch : all_batches(reader, records, 1 << 20)) {
            data += batch.data + "|";
            size += batch.data.size();
        }
        // Every byte read once: the added line ends are all that is new.
        BOOST_TEST(reader.bytes_read() <= size);
        return data;
    };
    BOOST_TEST(data_of({single.path, crlf.path}, 100) == "9,z\r\n|1,a\r\n2,b\r\n|");
    BOOST_TEST(data_of({single.path, crlf.path}, 1) == "9,z\r\n|1,a\r\n|2,b\r\n|");
    BOOST_TEST(data_of({single.path, empty.path, single2.path, cr.path}, 100) ==
               "9,z\r|8,\"y\r\nx\"\r|1,a\r2,b\r|");
    BOOST_TEST(data_of({single.path, lf.path}, 100) == "9,z\n|1,a\n|");
    BOOST_TEST(data_of({single.path, last_cr.path}, 100) == "9,z\r|1,a\r|");
    BOOST_TEST(data_of({single.path, empty.path}, 100) == "9,z\n|");
    BOOST_TEST(data_of({single.path, single2.path}, 100) == "9,z\n|8,\"y\r\nx\"\n|");
    // A next source whose first line end is past the first read.
    const std::string big = "7," + std::string((1 << 20) + 100, 'w') + "\r\n";
    TempFile big_file(big + "6,v\r\n");
    // (Compared as a bool: a failure would print megabytes.)
    BOOST_TEST((data_of({single.path, big_file.path}, 100) == "9,z\r\n|" + big + "|6,v\r\n|"));
    // A record with quoted line breaks, ended by the looked-ahead kind, is still one record.
    InputReader reader({single2.path, cr.path}, InputFormat::csv, '"', false);
    const auto batches = all_batches(reader, 100, 1 << 20);
    BOOST_TEST_REQUIRE(batches.size() == 2u);
    BOOST_TEST(batches[0].data == "8,\"y\r\nx\"\r");
    BOOST_TEST(batches[0].records == 1u);
    BOOST_TEST((batches[0].first_eol == LineEnd::cr));
    BOOST_TEST_REQUIRE(batches[0].multiline.size() == 1u);
    BOOST_TEST(batches[0].multiline[0].second.newlines == 1u);  // its quoted CR
}

BOOST_AUTO_TEST_SUITE_END()
