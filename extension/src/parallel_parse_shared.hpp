// Parallel field conversion: what the session (parallel_parse.cpp) and its workers
// (parallel_parse_worker.cpp) share. Not for other modules.
//
// Messages, leader to worker (a batch of field strings):
//   uint32 rows, uint32 unused, then per row: int64 line, int32 fields on the line; when that
//   is not the number of loaded columns, the line itself (int32 length, bytes, NUL) for the
//   error; then per field (at most one per loaded column) an int32 length (-1: NULL) followed
//   by that many bytes and a NUL.
// Worker to leader (the batch converted):
//   uint32 rows, uint32 unused, then per row: int64 line, uint32 tuple length, uint32 unused,
//   the minimal tuple, padded to MAXALIGN.
// The leader keeps at most in_flight_per_worker batches at each worker and sizes the worker's
// input queue to hold them, so its sends do not wait; when one would, it keeps taking results
// while it waits, so neither side can wait on the other forever.
#pragma once

#include "boundary.hpp"

extern "C" {
#include "access/tupdesc.h"
#include "commands/copyfrom_internal.h"
#include "catalog/pg_type.h"
#include "commands/copy.h"
#include "fmgr.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

#include <cstdint>
#include <cstring>
#include <vector>

namespace pg_ingest::parallel_parse::detail {

constexpr uint32_t batch_rows = 1000;
constexpr size_t batch_bytes = 64 * 1024;
// A batch grows past batch_bytes by its last row; one that is much larger (a huge field) is
// converted by the leader rather than sent.
constexpr size_t max_sent_batch = 2 * batch_bytes;
constexpr int in_flight_per_worker = 4;
constexpr Size in_queue_size = in_flight_per_worker * (max_sent_batch + 64) + 8192;
// Replies larger than the ring are streamed through it.
constexpr Size out_queue_size = 1024 * 1024;

constexpr uint64 key_shared = 1;
constexpr uint64 key_in = 100;   // + worker number
constexpr uint64 key_out = 300;  // + worker number

struct Shared {
    Oid relid;
    int ncols;
    AttrNumber cols[MaxTupleAttributeNumber];
};

inline void append(std::vector<char>& b, const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    b.insert(b.end(), c, c + n);
}

inline void pad_to_maxalign(std::vector<char>& b) {
    b.resize(MAXALIGN(b.size()), 0);
}

// Converts field strings with the columns' input functions, as NextCopyFrom does; errors get
// COPY's own context line (CopyFromErrorCallback over a state holding just what it reads).
class Converter {
  public:
    Converter(Relation rel, const std::vector<AttrNumber>& cols) : m_ncols(cols.size()) {
        m_err.cur_relname = RelationGetRelationName(rel);
        m_err.opts.binary = false;
        pg_call([&] {
            TupleDesc rd = RelationGetDescr(rel);
            m_fn = static_cast<FmgrInfo*>(palloc0(sizeof(FmgrInfo) * m_ncols));
            m_ioparam = static_cast<Oid*>(palloc(sizeof(Oid) * m_ncols));
            m_typmod = static_cast<int32*>(palloc(sizeof(int32) * m_ncols));
            m_names = static_cast<const char**>(palloc(sizeof(char*) * m_ncols));
            // The columns, then the line number: the merge sorts rows in this layout.
            m_desc = CreateTemplateTupleDesc(m_ncols + 1);
            for (int i = 0; i < m_ncols; i++) {
                Form_pg_attribute att = TupleDescAttr(rd, cols[i] - 1);
                Oid input;
                getTypeInputInfo(att->atttypid, &input, &m_ioparam[i]);
                fmgr_info(input, &m_fn[i]);
                m_typmod[i] = att->atttypmod;
                m_names[i] = NameStr(att->attname);
                TupleDescInitEntry(m_desc, i + 1, NameStr(att->attname), att->atttypid,
                                   att->atttypmod, att->attndims);
            }
            TupleDescInitEntry(m_desc, m_ncols + 1, "seq", INT8OID, -1, 0);
        });
    }

    int ncols() const { return m_ncols; }
    TupleDesc desc() const { return m_desc; }

    // Decodes the row at p, converts its fields into values/nulls (ncols() entries) and
    // returns the position after it. Call inside pg_call, in the memory context the values
    // should live in.
    const char* convert(const char* p, Datum* values, bool* nulls, int64_t* line) {
        int64_t l;
        int32_t nfields;
        memcpy(&l, p, sizeof l);
        p += sizeof l;
        memcpy(&nfields, p, sizeof nfields);
        p += sizeof nfields;
        *line = l;
        const char* text = nullptr;
        if (nfields != m_ncols) {
            int32_t len;
            memcpy(&len, p, sizeof len);
            text = p + sizeof len;
            p = text + len + 1;
        }
        ErrorContextCallback cb;
        cb.callback = CopyFromErrorCallback;
        cb.arg = &m_err;
        cb.previous = error_context_stack;
        error_context_stack = &cb;
        m_err.cur_lineno = static_cast<uint64>(l);
        m_err.line_buf_valid = false;
        // NextCopyFrom's checks, in its order: too many fields before any is converted, a
        // missing one when its turn comes. The context shows the line, as COPY's does.
        if (nfields > m_ncols)
            row_error(text, "extra data after last expected column");
        const int present = nfields < m_ncols ? nfields : m_ncols;
        for (int i = 0; i < present; i++) {
            int32_t len;
            memcpy(&len, p, sizeof len);
            p += sizeof len;
            char* s = nullptr;
            if (len >= 0) {
                s = const_cast<char*>(p);
                p += len + 1;
            }
            m_err.cur_attname = m_names[i];
            m_err.cur_attval = s;
            values[i] = InputFunctionCall(&m_fn[i], s, m_ioparam[i], m_typmod[i]);
            nulls[i] = s == nullptr;
        }
        m_err.cur_attname = nullptr;
        m_err.cur_attval = nullptr;
        if (present < m_ncols)
            row_error(text, psprintf("missing data for column \"%s\"", m_names[present]));
        m_err.cur_attval = nullptr;
        error_context_stack = cb.previous;
        return p;
    }

  private:
    [[noreturn]] void row_error(const char* text, const char* message) {
        m_err.line_buf.data = const_cast<char*>(text);
        m_err.line_buf.len = static_cast<int>(strlen(text));
        m_err.line_buf_valid = true;
        ereport(ERROR, (errcode(ERRCODE_BAD_COPY_FILE_FORMAT), errmsg_internal("%s", message)));
        pg_unreachable();
    }

    int m_ncols;
    FmgrInfo* m_fn = nullptr;
    Oid* m_ioparam = nullptr;
    int32* m_typmod = nullptr;
    const char** m_names = nullptr;
    TupleDesc m_desc = nullptr;
    CopyFromStateData m_err{};
};

}  // namespace pg_ingest::parallel_parse::detail
