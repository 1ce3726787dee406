// The logging hooks of Writer and AsyncLoader (WriterHooks::on_log, AsyncLoaderOptions::on_log).
#pragma once

#include <pg_ingest/options.hpp>

#include <cstdio>
#include <functional>
#include <string>

namespace pg_ingest::detail {

using LogHook = std::function<void(LogLevel, const std::string&)>;

// Gives `message` to `hook`: debug and info only when `verbose`, warnings and errors always.
// Without a hook the line goes to standard error ("pg_ingest warning: ..."), as libpq's notices
// do: a batch a destroyed writer discards, or verbose=1 given as an option, is never silent. A
// hook must not throw; if it does, the exception is dropped: a logger's failure must not fail a
// load.
inline void log_to(const LogHook& hook, bool verbose, LogLevel level,
                   const std::string& message) noexcept {
    if ((level == LogLevel::info || level == LogLevel::debug) && !verbose) {
        return;
    }
    if (!hook) {
        const char* name = level == LogLevel::debug     ? "debug"
                           : level == LogLevel::info    ? "info"
                           : level == LogLevel::warning ? "warning"
                                                        : "error";
        std::fprintf(stderr, "pg_ingest %s: %s\n", name, message.c_str());
        return;
    }
    try {
        hook(level, message);
    } catch (...) {
    }
}

}  // namespace pg_ingest::detail
