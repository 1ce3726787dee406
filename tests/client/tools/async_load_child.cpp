// A loader process for the "killed mid-way" AsyncLoader test: the test starts it, reads its
// progress lines and SIGKILLs it, then starts it again with the same arguments. Nothing is
// cleaned up on the way out, as with a real crash.
//
//   async_load_child CONNINFO TABLE ROWS CHUNK_ROWS CHECKPOINT_ROWS MAX_TEMP_FILE_SIZE
//
// Loads ids 1..ROWS as CSV "id,row <id>" in CHUNK_ROWS chunks, one unit (job key
// "kill-cp<N>") per CHECKPOINT_ROWS, conflict mode 'none' (plain append), queue size 2,
// parallelism 2. Prints "staged <rows>" after every chunk it staged, "skipped <rows>" after
// every chunk an earlier run had already submitted, and "done <jobs>" when every job ended
// FINISH. Exit 0 on success, 1 with the error on stderr otherwise.
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>

#include <pg_ingest/async_loader.hpp>
#include <pg_ingest/connection_options.hpp>
#include <pg_ingest/qualified_name.hpp>

namespace {

std::string csv_rows(long long first, long long rows) {
    std::string data;
    data.reserve(static_cast<std::size_t>(rows) * 20);
    for (long long id = first; id < first + rows; ++id) {
        data += std::to_string(id);
        data += ",row ";
        data += std::to_string(id);
        data += '\n';
    }
    return data;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 7) {
        std::fprintf(stderr,
                     "usage: %s CONNINFO TABLE ROWS CHUNK_ROWS CHECKPOINT_ROWS "
                     "MAX_TEMP_FILE_SIZE\n",
                     argv[0]);
        return 1;
    }
    try {
        const long long rows = std::stoll(argv[3]);
        const long long chunk = std::stoll(argv[4]);
        const long long checkpoint = std::stoll(argv[5]);
        pg_ingest::AsyncLoaderOptions options;
        options.job.target = pg_ingest::QualifiedName::parse(argv[2]);
        options.job.conflict_mode = "none";
        options.parallelism = 2;
        options.queue_size = 2;
        options.max_temp_file_size = std::stoull(argv[6]);
        options.poll_interval = std::chrono::milliseconds(200);
        pg_ingest::AsyncLoader loader(pg_ingest::ConnectionOptions(argv[1]), options);
        for (long long first = 1; first <= rows; first += chunk) {
            if ((first - 1) % checkpoint == 0) {
                loader.begin("kill-cp" + std::to_string((first - 1) / checkpoint));
            }
            const bool staged =
                loader.stage(csv_rows(first, chunk), static_cast<std::uint64_t>(chunk));
            std::printf("%s %lld\n", staged ? "staged" : "skipped", first + chunk - 1);
            std::fflush(stdout);
        }
        const auto jobs = loader.wait(std::chrono::steady_clock::now() + std::chrono::minutes(10));
        for (const auto& job : jobs) {
            if (job.state != pg_ingest::JobState::finish) {
                std::fprintf(stderr, "job %lld (%s) did not finish: %s\n",
                             static_cast<long long>(job.id), job.job_key.c_str(),
                             job.error_message.c_str());
                return 1;
            }
        }
        std::printf("done %zu\n", jobs.size());
        return 0;
    } catch (const std::exception& error) {
        std::fprintf(stderr, "async_load_child: %s\n", error.what());
        return 1;
    }
}
