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
    BOOST_TEST(batches[1].first_crlf);
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

BOOST_AUTO_TEST_SUITE_END()
