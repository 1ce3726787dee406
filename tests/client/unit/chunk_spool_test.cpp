// detail::ChunkSpool: the AsyncLoader's local copy of a job's chunks, read back for a retry.
#include <cstdlib>
#include <string>

#include <boost/test/unit_test.hpp>

#include <pg_ingest/error.hpp>

#include "chunk_spool.hpp"

using pg_ingest::detail::ChunkSpool;

namespace {

// Sets TMPDIR for the scope of one test and restores it after.
struct TmpdirOverride {
    std::string saved;
    bool had = false;
    explicit TmpdirOverride(const std::string& value) {
        if (const char* old = std::getenv("TMPDIR")) {
            saved = old;
            had = true;
        }
        setenv("TMPDIR", value.c_str(), 1);
    }
    ~TmpdirOverride() {
        if (had) {
            setenv("TMPDIR", saved.c_str(), 1);
        } else {
            unsetenv("TMPDIR");
        }
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(chunk_spool)

BOOST_AUTO_TEST_CASE(chunks_read_back_byte_for_byte_with_their_numbers_and_first_rows) {
    ChunkSpool spool;
    BOOST_TEST(spool.size() == 0u);
    const std::string binary("a\0b\nc\\d\t\xff", 10);
    const std::string big(3u << 20, 'x');
    spool.append("1,one\n", 1, 1);
    spool.append(binary, 2, 2);
    spool.append("", 3, 0);
    spool.append(big, 0, 7);
    BOOST_TEST(spool.size() == 4u);
    BOOST_TEST(spool.bytes() == 6u + 10u + big.size());
    BOOST_TEST(spool.read(0).data == "1,one\n");
    BOOST_TEST(spool.read(0).number == 1);
    BOOST_TEST(spool.read(1).data == binary);
    BOOST_TEST(spool.read(2).data.empty());
    BOOST_TEST(spool.read(2).number == 3);
    BOOST_TEST(spool.read(3).data == big);
    BOOST_TEST(spool.read(3).number == 0);
    BOOST_TEST(spool.read(3).first_row == 7u);
    BOOST_TEST(spool.read(1).first_row == 2u);
    BOOST_CHECK_THROW(spool.read(4), std::out_of_range);
}

BOOST_AUTO_TEST_CASE(clear_forgets_every_chunk_and_the_file_is_reused) {
    ChunkSpool spool;
    spool.append("first job\n", 1, 1);
    spool.clear();
    BOOST_TEST(spool.size() == 0u);
    BOOST_TEST(spool.bytes() == 0u);
    spool.append("second\n", 1, 1);
    BOOST_TEST(spool.read(0).data == "second\n");
    ChunkSpool moved(std::move(spool));
    BOOST_TEST(moved.read(0).data == "second\n");
}

BOOST_AUTO_TEST_CASE(an_unusable_directory_is_a_typed_error_naming_it) {
    TmpdirOverride tmpdir("/nonexistent/pg_ingest-spool-test");
    ChunkSpool spool;
    try {
        spool.append("x\n", 1, 1);
        BOOST_FAIL("expected pg_ingest::Error");
    } catch (const pg_ingest::Error& error) {
        BOOST_TEST(error.sqlstate() == "58030");
        BOOST_TEST(std::string(error.what()).find("/nonexistent/pg_ingest-spool-test") !=
                   std::string::npos);
        BOOST_TEST(!error.retryable());
    }
    BOOST_TEST(spool.size() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
