// The logging hooks of Writer and AsyncLoader (WriterHooks::on_log, AsyncLoaderOptions::on_log).
#pragma once

#include <pg_ingest/options.hpp>

#include <functional>
#include <string>

namespace pg_ingest::detail {

using LogHook = std::function<void(LogLevel, const std::string&)>;

// Gives `message` to `hook` (if any): debug and info only when `verbose`, warnings and errors
// always. A hook must not throw; if it does, the exception is dropped: a logger's failure must
// not fail a load.
inline void log_to(const LogHook& hook, bool verbose, LogLevel level,
                   const std::string& message) noexcept {
    if (!hook || ((level == LogLevel::info || level == LogLevel::debug) && !verbose)) {
        return;
    }
    try {
        hook(level, message);
    } catch (...) {
    }
}

}  // namespace pg_ingest::detail
