// The direct apply path's ordered probe (see DirectTarget in merge_direct_state.hpp): for a
// one-column ascending btree arbiter, batches of index entries matched against the sorted rows.
#include "merge_direct_state.hpp"

extern "C" {
#include "access/genam.h"
#include "access/nbtree.h"
#include "access/stratnum.h"
#include "catalog/pg_am_d.h"
#include "storage/lmgr.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
}

namespace pg_ingest::direct {

// Decides whether rows are found with the ordered probe (see DirectTarget). Its condition: the
// merge's sort order is the index's own, which holds for one key column indexed ascending, nulls
// last (the merge sorts by the index opfamily's "<" and collation, nulls last), and index entries
// hold the column's own type; NULLS NOT DISTINCT indexes are left to the per-row probe.
// `key_att`: the key's attribute in t->rel.
void init_ordered_probe(DirectTarget* t, const ConflictTarget& c, Oid index, AttrNumber key_att,
                        MemoryContext cxt) {
    t->ordered = false;
    Relation idx = nullptr;
    for (int i = 0; i < t->rri->ri_NumIndices; i++)
        if (RelationGetRelid(t->rri->ri_IndexRelationDescs[i]) == index)
            idx = t->rri->ri_IndexRelationDescs[i];
    if (!idx || idx->rd_rel->relam != BTREE_AM_OID || c.keys.size() != 1 || c.nulls_not_distinct ||
        key_att <= 0 || IndexRelationGetNumberOfKeyAttributes(idx) != 1 ||
        idx->rd_indoption[0] != 0 ||
        TupleDescAttr(RelationGetDescr(idx), 0)->atttypid !=
            TupleDescAttr(RelationGetDescr(t->rel), key_att - 1)->atttypid)
        return;
    const Oid ge = get_opfamily_member(idx->rd_opfamily[0], idx->rd_opcintype[0],
                                       idx->rd_opcintype[0], BTGreaterEqualStrategyNumber);
    if (!OidIsValid(ge))
        return;
    t->index = idx;
    t->key_att = key_att;
    t->key_ge = get_opcode(ge);
    t->key_collation = idx->rd_indcollation[0];
    t->key_order.ssup_cxt = cxt;
    t->key_order.ssup_collation = t->key_collation;
    t->key_order.ssup_nulls_first = false;
    t->key_order.ssup_attno = 1;
    PrepareSortSupportFromIndexRel(idx, BTLessStrategyNumber, &t->key_order);
    t->key_byval = TupleDescAttr(RelationGetDescr(idx), 0)->attbyval;
    t->key_len = TupleDescAttr(RelationGetDescr(idx), 0)->attlen;
    InitDirtySnapshot(t->dirty);
    t->batch_cxt = AllocSetContextCreate(cxt, "pg_ingest ordered probe", ALLOCSET_DEFAULT_SIZES);
    t->batch_keys = static_cast<Datum*>(palloc(sizeof(Datum) * kMaxBatch));
    t->batch_tids = static_cast<ItemPointerData*>(palloc(sizeof(ItemPointerData) * kMaxBatch));
    t->batch_size = kMinBatch;
    t->ordered = true;
}

namespace {

// Ordered probe (see DirectTarget), run inside pg_call like everything below.

// Reads the batch: up to batch_size entries (or `size`, when given) from the first >= key on.
// The scan ends here, its pins with it.
void read_batch(DirectTarget* t, Datum key, int size = 0) {
    if (size == 0 && t->batch_valid) {
        // Adapt: the rows used most of the last batch, or hardly any of it.
        if (t->batch_pos >= t->batch_len / 2 && t->batch_len == t->batch_size)
            t->batch_size = std::min(t->batch_size * 2, kMaxBatch);
        else if (t->batch_pos <= 1)
            t->batch_size = std::max(t->batch_size / 2, kMinBatch);
    }
    t->batches++;
    MemoryContextReset(t->batch_cxt);
    MemoryContext old = MemoryContextSwitchTo(t->batch_cxt);
    ScanKeyData sk;
    ScanKeyEntryInitialize(&sk, 0, 1, BTGreaterEqualStrategyNumber, InvalidOid, t->key_collation,
                           t->key_ge, key);
    IndexScanDesc scan = index_beginscan(t->rel, t->index, &t->dirty, 1, 0);
    scan->xs_want_itup = true;  // the entries' keys, without the heap
    index_rescan(scan, &sk, 1, NULL, 0);
    int n = 0;
    const int want = size > 0 ? size : t->batch_size;
    while (n < want && index_getnext_tid(scan, ForwardScanDirection)) {
        bool isnull;
        const Datum k = index_getattr(scan->xs_itup, 1, scan->xs_itupdesc, &isnull);
        Assert(!isnull);  // ">=" passes no NULL
        t->batch_keys[n] = datumCopy(k, t->key_byval, t->key_len);
        t->batch_tids[n] = scan->xs_heaptid;
        n++;
    }
    index_endscan(scan);
    MemoryContextSwitchTo(old);
    t->batch_len = n;
    t->batch_pos = 0;
    t->batch_to_end = n < want;
    t->batch_valid = true;
}

// Looks for a row holding `key` among the batch's entries, reading a new batch when the key
// lies beyond it. found: the row is in t->old; unsure: too many dead entries with this key to
// tell from one batch.
Probe probe_batch(DirectTarget* t, Datum key) {
    auto cmp = [&](int i) {
        return ApplySortComparator(t->batch_keys[i], false, key, false, &t->key_order);
    };
    if (!t->batch_valid || (t->batch_len > 0 && cmp(t->batch_len - 1) < 0 && !t->batch_to_end))
        read_batch(t, key);
    while (t->batch_pos < t->batch_len && cmp(t->batch_pos) < 0)
        t->batch_pos++;
    bool reread = false;
    for (;;) {
        for (int i = t->batch_pos; i < t->batch_len && cmp(i) == 0; i++) {
            bool call_again = false, all_dead = false;
            if (!table_index_fetch_tuple(t->heap, &t->batch_tids[i], &t->dirty, t->old, &call_again,
                                         &all_dead)) {
                t->other_versions = true;
                continue;  // no version visible behind this entry; a later entry may have one
            }
            bool isnull;
            const Datum held = slot_getattr(t->old, t->key_att, &isnull);
            if (!isnull && ApplySortComparator(held, false, key, false, &t->key_order) == 0) {
                // Entries of the key after this one are other versions too (read no further);
                // at the batch's end that is not known, and other versions are assumed.
                t->other_versions = t->other_versions ||
                                    (i + 1 < t->batch_len ? cmp(i + 1) == 0 : !t->batch_to_end);
                return Probe::found;
            }
            ExecClearTuple(t->old);  // the TID was reused by another row since
        }
        // The entries with this key may go on past the batch: read from the key on, once.
        int last = t->batch_len - 1;
        if (t->batch_to_end || last < t->batch_pos || cmp(last) > 0)
            return Probe::none;
        // A batch that starts with this key and holds nothing else would only be read again.
        if (reread || t->batch_pos == 0)
            return Probe::unsure;
        reread = true;
        read_batch(t, key, kMaxBatch);
    }
}

}  // namespace

// Finds the row holding the proposed row's key: found with its version in t->old and its TID in
// *tid, none when there is none, unsure when the caller must probe per row. Waits, as
// ExecCheckIndexConstraints does, for a transaction that is inserting or deleting it.
Probe probe_ordered(DirectTarget* t, ItemPointer tid) {
    bool isnull;
    const Datum key = slot_getattr(t->ins, t->key_att, &isnull);
    t->other_versions = false;
    if (isnull)
        return Probe::none;  // a NULL key never conflicts
    for (;;) {
        const Probe p = probe_batch(t, key);
        table_index_fetch_reset(t->heap);  // t->old keeps its own pin
        if (p == Probe::unsure)
            t->batch_valid = false;
        if (p != Probe::found)
            return p;
        const TransactionId xwait =
            TransactionIdIsValid(t->dirty.xmin) ? t->dirty.xmin : t->dirty.xmax;
        if (TransactionIdIsValid(xwait)) {
            ItemPointerData ctid = t->old->tts_tid;
            const uint32 token = t->dirty.speculativeToken;
            ExecClearTuple(t->old);
            if (token)
                SpeculativeInsertionWait(xwait, token);
            else
                XactLockTableWait(xwait, t->rel, &ctid, XLTW_InsertIndex);
            t->batch_valid = false;  // read again what the other transaction left
            continue;
        }
        *tid = t->old->tts_tid;
        return Probe::found;
    }
}

}  // namespace pg_ingest::direct
