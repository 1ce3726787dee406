// The logging hooks' default: without a hook, lines go to standard error (gated by verbose as
// the hook's are), so a discarded batch or verbose=1 is never silent.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include "log_hook.hpp"

using namespace pg_ingest;

namespace {

// What `body` writes to file descriptor 2.
template <typename F>
std::string captured_stderr(F&& body) {
    char path[] = "/tmp/pg_ingest_log_hook_XXXXXX";
    const int file = ::mkstemp(path);
    BOOST_REQUIRE(file >= 0);
    std::fflush(stderr);
    const int saved = ::dup(2);
    ::dup2(file, 2);
    body();
    std::fflush(stderr);
    ::dup2(saved, 2);
    ::close(saved);
    ::close(file);
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    ::unlink(path);
    return text.str();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(log_hook)

BOOST_AUTO_TEST_CASE(without_a_hook_lines_go_to_stderr_gated_by_verbose) {
    const detail::LogHook none;
    const std::string quiet = captured_stderr([&] {
        detail::log_to(none, false, LogLevel::info, "flushed 3 rows");
        detail::log_to(none, false, LogLevel::warning, "retry 1 of 3");
        detail::log_to(none, false, LogLevel::error, "batch dropped");
    });
    BOOST_TEST(quiet == "pg_ingest warning: retry 1 of 3\npg_ingest error: batch dropped\n");
    const std::string verbose =
        captured_stderr([&] { detail::log_to(none, true, LogLevel::info, "flushed 3 rows"); });
    BOOST_TEST(verbose == "pg_ingest info: flushed 3 rows\n");
}

BOOST_AUTO_TEST_CASE(a_hook_gets_the_lines_instead_and_its_exception_is_dropped) {
    std::vector<std::string> lines;
    const detail::LogHook hook = [&](LogLevel, const std::string& line) {
        lines.push_back(line);
        throw std::runtime_error("logger broke");
    };
    const std::string out = captured_stderr([&] {
        detail::log_to(hook, false, LogLevel::info, "not verbose");
        detail::log_to(hook, false, LogLevel::warning, "kept");
    });
    BOOST_TEST(out.empty());
    BOOST_TEST(lines == (std::vector<std::string>{"kept"}));
}

BOOST_AUTO_TEST_SUITE_END()
