// The C++/PostgreSQL error boundary. Every other module goes through it.
//
// The hazard: PostgreSQL reports errors with ereport(ERROR), which longjmps to the nearest
// sigsetjmp (PG_TRY or the main loop). A longjmp across C++ frames skips destructors (leaking
// memory, locks held by RAII objects, half-updated state) and is undefined behaviour when it
// crosses a frame with live non-trivial objects. The reverse is just as bad: a C++ exception
// that unwinds into PostgreSQL's C frames terminates the backend.
//
// So the rule, enforced here and only here:
//  * guard(): every function PostgreSQL calls (SQL functions, hooks, worker mains) is extern "C"
//    and forwards into guard(). guard() catches every C++ exception, leaves the catch block
//    (so the C++ runtime has finished with the exception object), and only then raises the
//    PostgreSQL error with a real SQLSTATE.
//  * pg_call(): C++ code with live destructors calls PostgreSQL functions that may ereport
//    through pg_call(). It runs them under PG_TRY, copies the error and throws PgError, which
//    keeps SQLSTATE, message, detail and hint. If PgError reaches guard() it is re-raised
//    unchanged. The lambda given to pg_call must hold only trivially destructible locals.
//  * A PgError may only be swallowed inside with_subtransaction(), whose rollback restores the
//    backend's state (locks, buffers, memory) the way PostgreSQL itself recovers from errors.
//  * Never throw inside PG_TRY; never ereport from C++ code outside pg_call().
#pragma once

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
}

#include <cstdio>
#include <exception>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pg_ingest {

// A PostgreSQL error caught by pg_call(). The ErrorData lives in a memory context of its own
// under TopTransactionContext (or TopMemoryContext outside a transaction) until the transaction
// ends; code that swallows many errors (bad-row isolation) frees it with release(), which
// deletes that context (FreeErrorData would leave some of the copied fields behind, about 200
// bytes per error).
class PgError : public std::exception {
  public:
    explicit PgError(ErrorData* edata) noexcept : m_edata(edata) {}
    const char* what() const noexcept override;
    int sqlerrcode() const noexcept { return m_edata->sqlerrcode; }
    ErrorData* data() const noexcept { return m_edata; }
    void release() const noexcept;  // frees the ErrorData; the object must not be used after

  private:
    ErrorData* m_edata;
};

// An error raised by our own C++ code, with the SQLSTATE it must reach the client with.
class ServerError : public std::runtime_error {
  public:
    ServerError(int sqlerrcode, std::string message, std::string detail = {}, std::string hint = {})
        : std::runtime_error(std::move(message)),
          m_sqlerrcode(sqlerrcode),
          m_detail(std::move(detail)),
          m_hint(std::move(hint)) {}
    int sqlerrcode() const noexcept { return m_sqlerrcode; }
    const std::string& detail() const noexcept { return m_detail; }
    const std::string& hint() const noexcept { return m_hint; }

  private:
    int m_sqlerrcode;
    std::string m_detail;
    std::string m_hint;
};

[[noreturn]] void raise(int sqlerrcode, std::string message, std::string detail = {},
                        std::string hint = {});

// printf-style formatting into a std::string (messages are built before raising).
std::string format(const char* fmt, ...) pg_attribute_printf(1, 2);

namespace detail {

// What guard() must raise, captured into fixed buffers inside the catch block: nothing here
// owns heap memory, so the longjmp of ereport after the catch block skips no destructor.
struct Pending {
    ErrorData* pg_error = nullptr;
    int sqlerrcode = 0;
    char message[2048] = {0};
    char detail[2048] = {0};
    char hint[1024] = {0};
};

void capture(Pending& p, int sqlerrcode, const char* message, const char* detail,
             const char* hint) noexcept;
[[noreturn]] void raise_pending(const Pending& p);

// Copies the error being handled (after a PG_CATCH that left it on the error stack), flushes
// it and returns the copy; restores caller_cxt. Copying allocates: if that fails too, both
// errors are flushed and std::bad_alloc is thrown, rather than the new error longjmping past
// the caller's C++ frames (inside PG_CATCH the outer handler is already the active one).
ErrorData* take_caught_error(MemoryContext caller_cxt);

// Runs f under PG_TRY. On a PostgreSQL error, returns the copied ErrorData; else nullptr.
// F must not hold locals with non-trivial destructors (a longjmp would skip them). A C++
// exception from f (a std::bad_alloc, say) is caught inside PG_TRY and rethrown after
// PG_END_TRY has restored PostgreSQL's error handler: an exception unwinding out of PG_TRY
// would leave PG_exception_stack pointing into a dead frame.
template <typename F>
ErrorData* try_pg(F& f) {
    MemoryContext volatile caller_cxt = CurrentMemoryContext;
    // errfinish zeroes the holdoff counts before it longjmps: a caller that goes on after the
    // error (or unwinds to code that resumes interrupts) expects its own counts back.
    const uint32 interrupt_holdoff = InterruptHoldoffCount;
    const uint32 cancel_holdoff = QueryCancelHoldoffCount;
    volatile bool failed = false;
    std::exception_ptr thrown;  // set only when no longjmp happened
    PG_TRY();
    {
        try {
            f();
        } catch (...) {
            thrown = std::current_exception();
        }
    }
    PG_CATCH();
    { failed = true; }
    PG_END_TRY();
    if (thrown) {
        MemoryContextSwitchTo(caller_cxt);
        std::rethrow_exception(thrown);
    }
    if (!failed)
        return nullptr;
    InterruptHoldoffCount = interrupt_holdoff;
    QueryCancelHoldoffCount = cancel_holdoff;
    return take_caught_error(caller_cxt);
}

}  // namespace detail

// Entry-point guard: call f(); a C++ exception becomes a PostgreSQL error with its SQLSTATE
// (PgError unchanged, ServerError its code, bad_alloc out_of_memory, anything else
// internal_error). Returns f's result.
template <typename F>
auto guard(F&& f) -> decltype(f()) {
    detail::Pending pending;
    try {
        return f();
    } catch (const PgError& e) {
        pending.pg_error = e.data();
    } catch (const ServerError& e) {
        detail::capture(pending, e.sqlerrcode(), e.what(), e.detail().c_str(), e.hint().c_str());
    } catch (const std::bad_alloc&) {
        detail::capture(pending, ERRCODE_OUT_OF_MEMORY, "out of memory",
                        "A C++ allocation in pg_ingest failed.", nullptr);
    } catch (const std::exception& e) {
        detail::capture(pending, ERRCODE_INTERNAL_ERROR, e.what(), nullptr, nullptr);
    } catch (...) {
        detail::capture(pending, ERRCODE_INTERNAL_ERROR, "unexpected C++ exception of unknown type",
                        nullptr, nullptr);
    }
    // Outside every catch block: the exception object is gone, so the longjmp is safe.
    detail::raise_pending(pending);
}

// Reverse guard: run PostgreSQL code that may ereport; the error becomes a PgError.
template <typename F>
auto pg_call(F&& f) -> decltype(f()) {
    using R = decltype(f());
    if constexpr (std::is_void_v<R>) {
        auto run = [&]() { f(); };
        if (ErrorData* e = detail::try_pg(run))
            throw PgError(e);
    } else {
        static_assert(std::is_trivially_copyable_v<R>, "pg_call returns plain values only");
        R result{};
        auto run = [&]() { result = f(); };
        if (ErrorData* e = detail::try_pg(run))
            throw PgError(e);
        return result;
    }
}

// Runs f (C++ code that may throw) in an internal subtransaction. On any exception the
// subtransaction is rolled back (releasing whatever the failed PostgreSQL code held) and the
// exception propagates; callers catch it to continue. Memory context and resource owner are
// the caller's on return either way.
template <typename F>
void with_subtransaction(F&& f);

namespace detail {
struct SubxactState {
    MemoryContext cxt;
    ResourceOwner owner;
    SubTransactionId id;  // ours: rollback_subxact() leaves any other level alone
};
SubxactState begin_subxact();
void commit_subxact(const SubxactState& s);
void rollback_subxact(const SubxactState& s);
}  // namespace detail

template <typename F>
void with_subtransaction(F&& f) {
    const detail::SubxactState s = detail::begin_subxact();
    try {
        f();
        // A commit that fails (another extension's pre-commit callback) leaves the
        // subtransaction open: it is rolled back as a failure of f would be, as PL/pgSQL does.
        detail::commit_subxact(s);
    } catch (...) {
        detail::rollback_subxact(s);
        throw;
    }
}

// Text helpers that cross the boundary safely.
std::string text_to_string(const text* t);
text* string_to_text(const std::string& s);
// The elements of a text[] datum; a NULL element is 22004 naming `what` ("column names ...").
std::vector<std::string> text_array_to_strings(Datum array, const char* what);
// Argument `n`, a text[] of column names called `name`: NULL (the default) is no list; an empty
// array names nothing and is refused (22023), as COPY refuses CONFLICT_COLUMNS ''.
std::vector<std::string> column_names_arg(FunctionCallInfo fcinfo, int n, const char* name);

}  // namespace pg_ingest

// Declares an SQL-callable C function `name` that forwards into guard() and the C++
// implementation `name##_impl(FunctionCallInfo)`.
#define PGI_FUNCTION(name)                                                       \
    static Datum name##_impl(FunctionCallInfo fcinfo);                           \
    extern "C" {                                                                 \
    PG_FUNCTION_INFO_V1(name);                                                   \
    __attribute__((visibility("default"))) Datum name(PG_FUNCTION_ARGS) {        \
        return pg_ingest::guard([&]() -> Datum { return name##_impl(fcinfo); }); \
    }                                                                            \
    }                                                                            \
    static Datum name##_impl(FunctionCallInfo fcinfo)
