// Reading a merge source from a table: the rows of any SELECTable relation through an SPI
// cursor (as the current user, so its privileges and row-level security apply), and matching
// its columns to a target's by name. Used by ingest.merge() and the async load workers.
#pragma once

#include "merge.hpp"

extern "C" {
#include "executor/spi.h"
#include "nodes/execnodes.h"
#include "utils/relcache.h"
}

#include <memory>
#include <string>
#include <vector>

namespace pg_ingest {

// The source's live column names, in column order.
std::vector<std::string> source_columns(Oid source);

// Target attribute numbers of `names`; 42703 for a name the target lacks, 428C9 for a
// generated target column.
std::vector<AttrNumber> match_columns(const std::vector<std::string>& names, Relation target);

// Rows of a table (or anything SELECTable), read through an SPI cursor opened in the
// constructor, converted to the types of the target columns `attnums` of `target` as INSERT
// converts them (assignment casts, typmods such as varchar(n), domain checks; 42804 when there
// is no such cast). With `with_raw` each row also carries its text form ("(v1,v2,...)", as a
// record prints) for reject reports. `order_by` (SQL, " ORDER BY ...") orders the rows; the
// merge numbers them in the order read.
class CursorSource : public RowSource {
  public:
    // `on_bad_row`, when given (exception mode 'ignore'): a row whose conversion fails with a
    // data error (class 22) or a domain's CHECK / NOT NULL (class 23) is handed to it, with its
    // number and text, and skipped, instead of failing the read (each conversion then runs in
    // a subtransaction). It must outlive the source.
    CursorSource(Oid source, const std::vector<std::string>& names, Relation target,
                 const std::vector<AttrNumber>& attnums, bool with_raw = false,
                 const std::string& order_by = "", const RejectSink* on_bad_row = nullptr);
    bool next(SourceRow& row) override;
    // Rows handed to on_bad_row so far.
    int64_t rejected() const { return m_rejected; }
    // Closes the cursor and the SPI connection; call once after the last next().
    void close();

  private:
    bool fetch();
    bool convert(SourceRow& row);

    int m_ncols = 0;
    bool m_with_raw = false;
    std::vector<Datum> m_values;
    std::unique_ptr<bool[]> m_nulls;
    std::string m_raw;
    Portal m_portal = nullptr;
    SPITupleTable* m_table = nullptr;  // the last fetch (freed before the next)
    uint64 m_count = 0, m_pos = 0;
    // Per column, the conversion to the target's type (nullptr: the types are the same).
    std::vector<ExprState*> m_casts;
    EState* m_estate = nullptr;
    TupleTableSlot* m_slot = nullptr;  // the fetched row, for the conversions' Vars
    int64_t m_line = 0;
    bool m_done = false;
    const RejectSink* m_on_bad_row = nullptr;
    int64_t m_rejected = 0;
};

}  // namespace pg_ingest
