#include "guc.hpp"

#include "boundary.hpp"

extern "C" {
#include "utils/guc.h"
}

namespace pg_ingest::guc {

int merge_chunk_rows = 10000;

void init() {
    pg_call([] {
        DefineCustomIntVariable(
            "ingest.merge_chunk_rows", "Rows applied per merge statement.",
            "With ON_ERROR 'ignore' this is also the unit that is retried row by row when it "
            "holds a bad row; smaller chunks isolate bad rows faster, larger ones cost less per "
            "row.",
            &merge_chunk_rows, 10000, 1, 10000000, PGC_USERSET, 0, nullptr, nullptr, nullptr);
        // Nobody else may define ingest.* settings; typos in ingest.* are reported.
        MarkGUCPrefixReserved("ingest");
    });
}

}  // namespace pg_ingest::guc
