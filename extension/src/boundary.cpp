// See boundary.hpp for the rule this module enforces.
#include "boundary.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
}

#include <cstdarg>
#include <cstring>

namespace pg_ingest {

const char* PgError::what() const noexcept {
    return m_edata && m_edata->message ? m_edata->message : "PostgreSQL error";
}

void PgError::release() const noexcept {
    // The ErrorData's own context (see try_pg); deleting a context does not ereport.
    if (m_edata)
        MemoryContextDelete(GetMemoryChunkContext(m_edata));
}

void raise(int sqlerrcode, std::string message, std::string detail, std::string hint) {
    throw ServerError(sqlerrcode, std::move(message), std::move(detail), std::move(hint));
}

std::string format(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    const int n = std::vsnprintf(nullptr, 0, fmt, ap);
    va_end(ap);
    std::string out(n > 0 ? static_cast<size_t>(n) : 0, '\0');
    if (n > 0)
        std::vsnprintf(out.data(), out.size() + 1, fmt, ap2);
    va_end(ap2);
    return out;
}

namespace detail {

void capture(Pending& p, int sqlerrcode, const char* message, const char* detail,
             const char* hint) noexcept {
    p.sqlerrcode = sqlerrcode;
    strlcpy(p.message, message ? message : "", sizeof(p.message));
    strlcpy(p.detail, detail ? detail : "", sizeof(p.detail));
    strlcpy(p.hint, hint ? hint : "", sizeof(p.hint));
}

void raise_pending(const Pending& p) {
    if (p.pg_error) {
        // ReThrowError copies the error into ErrorContext before it throws; the copy's own
        // context (see try_pg) then goes, or each error a caller catches (PL/pgSQL EXCEPTION)
        // would hold it until the transaction ends.
        MemoryContext own = GetMemoryChunkContext(p.pg_error);
        PG_TRY();
        { ReThrowError(p.pg_error); }
        PG_CATCH();
        {
            MemoryContextDelete(own);
            PG_RE_THROW();
        }
        PG_END_TRY();
    }
    ereport(ERROR, (errcode(p.sqlerrcode), errmsg_internal("%s", p.message),
                    p.detail[0] ? errdetail_internal("%s", p.detail) : 0,
                    p.hint[0] ? errhint("%s", p.hint) : 0));
    pg_unreachable();
}

ErrorData* take_caught_error(MemoryContext caller_cxt) {
    ErrorData* volatile edata = nullptr;
    PG_TRY();
    {
        // The copy must outlive whatever C++ unwinding deletes (memory contexts of the
        // failed operation, subtransactions): keep it under the top transaction's context, in
        // a context of its own that PgError::release() deletes whole.
        MemoryContextSwitchTo(
            AllocSetContextCreate(TopTransactionContext ? TopTransactionContext : TopMemoryContext,
                                  "pg_ingest error", ALLOCSET_SMALL_SIZES));
        edata = CopyErrorData();
    }
    PG_CATCH();
    { edata = nullptr; }
    PG_END_TRY();
    FlushErrorState();
    MemoryContextSwitchTo(caller_cxt);
    if (!edata)
        throw std::bad_alloc();
    return edata;
}

SubxactState begin_subxact() {
    SubxactState s{CurrentMemoryContext, CurrentResourceOwner, InvalidSubTransactionId};
    pg_call([&] {
        BeginInternalSubTransaction(nullptr);
        MemoryContextSwitchTo(s.cxt);
    });
    s.id = GetCurrentSubTransactionId();
    return s;
}

void commit_subxact(const SubxactState& s) {
    pg_call([&] {
        ReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(s.cxt);
        CurrentResourceOwner = s.owner;
    });
}

void rollback_subxact(const SubxactState& s) {
    pg_call([&] {
        // Levels that f left open (ids only grow) go first, then ours. None is ours when a
        // failed commit got past the point of no return: the enclosing transaction's abort,
        // which the error then leads to, cleans up.
        while (GetCurrentSubTransactionId() > s.id && IsSubTransaction())
            RollbackAndReleaseCurrentSubTransaction();
        if (GetCurrentSubTransactionId() == s.id)
            RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(s.cxt);
        CurrentResourceOwner = s.owner;
    });
}

}  // namespace detail

std::string text_to_string(const text* t) {
    // VARDATA_ANY handles short headers; detoasting is the caller's job (PG_GETARG_TEXT_PP).
    return std::string(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

std::vector<std::string> text_array_to_strings(Datum array, const char* what) {
    Datum* elems = nullptr;
    bool* nulls = nullptr;
    int count = 0;
    pg_call([&] {
        deconstruct_array(DatumGetArrayTypeP(array), TEXTOID, -1, false, TYPALIGN_INT, &elems,
                          &nulls, &count);
    });
    std::vector<std::string> out;
    for (int i = 0; i < count; i++) {
        if (nulls[i])
            raise(ERRCODE_NULL_VALUE_NOT_ALLOWED, format("%s must not be NULL", what));
        out.push_back(text_to_string(
            reinterpret_cast<text*>(pg_call([&] { return PG_DETOAST_DATUM_PACKED(elems[i]); }))));
    }
    return out;
}

std::vector<std::string> column_names_arg(FunctionCallInfo fcinfo, int n, const char* name) {
    if (PG_ARGISNULL(n))
        return {};
    std::vector<std::string> names = text_array_to_strings(PG_GETARG_DATUM(n), "column names");
    if (names.empty())
        raise(ERRCODE_INVALID_PARAMETER_VALUE, format("%s is an empty array", name), {},
              "Pass NULL (the default) instead, or name at least one column.");
    return names;
}

text* string_to_text(const std::string& s) {
    return pg_call([&] { return cstring_to_text_with_len(s.data(), static_cast<int>(s.size())); });
}

}  // namespace pg_ingest
