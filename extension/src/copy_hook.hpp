// The COPY ... WITH (ON_CONFLICT ...) hook.
#pragma once

extern "C" {
#include "postgres.h"
#include "tcop/utility.h"
}

namespace pg_ingest::copy_hook {

void init();  // installs the ProcessUtility hook (from _PG_init)

extern "C" void process_utility(PlannedStmt* pstmt, const char* query, bool read_only_tree,
                                ProcessUtilityContext context, ParamListInfo params,
                                QueryEnvironment* query_env, DestReceiver* dest,
                                QueryCompletion* qc);

}  // namespace pg_ingest::copy_hook
