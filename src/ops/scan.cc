#include "ops/scan.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <thread>

#include <botan/hex.h>
#include <fmt/format.h>

#include "util/text.h"

// One reader (this thread) streams rows out of the database, one statement per table, and puts the
// values that may be payloads into batches; a few workers, each with its own cipher object,
// classify and open them. Batches are recycled and the queue is bounded, so memory stays flat at
// any database size. Problems are named column by column in the order of their row labels
// (natural_less: integer keys and ctids by value), whatever order the rows came in — the database
// is not asked to sort them, which cost it more than reading them — and each worker keeps only the
// first problems_named per column in that order: their union holds the first of every column.

namespace ik::ops {
namespace {

constexpr size_t batch_values = 2048;
constexpr size_t batch_bytes = 1 << 20;

struct Batch {
    uint64_t first = 0;  // position (in the whole census) of the first value
    std::string arena;   // row labels and texts, back to back
    struct Entry { uint32_t column, row_at, row_size, text_at, text_size; };
    std::vector<Entry> entries;

    void clear() {  // a recycled batch must not keep the position of its last use
        first = 0;
        arena.clear();
        entries.clear();
    }
    void add(uint32_t column, std::string_view row, std::string_view text) {
        Entry e{column, static_cast<uint32_t>(arena.size()), static_cast<uint32_t>(row.size()), 0,
                static_cast<uint32_t>(text.size())};
        arena.append(row);
        e.text_at = static_cast<uint32_t>(arena.size());
        arena.append(text);
        entries.push_back(e);
    }
    bool full() const { return entries.size() >= batch_values || arena.size() >= batch_bytes; }
    std::string_view row(const Entry& e) const { return {arena.data() + e.row_at, e.row_size}; }
    std::string_view text(const Entry& e) const { return {arena.data() + e.text_at, e.text_size}; }
};

struct PositionedProblem {
    size_t column;
    uint64_t position;  // in the census: orders problems whose row labels are equal
    ValueProblem problem;
};

bool named_before(const PositionedProblem& a, const PositionedProblem& b) {
    if (a.column != b.column) return a.column < b.column;
    if (a.problem.row != b.problem.row) return natural_less(a.problem.row, b.problem.row);
    return a.position < b.position;
}

// Keeps the first `keep` problems of a list of one column in naming order.
void keep_first(std::vector<PositionedProblem>& problems, size_t keep) {
    if (problems.size() <= keep) return;
    std::nth_element(problems.begin(), problems.begin() + static_cast<std::ptrdiff_t>(keep), problems.end(), named_before);
    problems.resize(keep);
}

// A bounded hand-over of batches between the reader and the workers, plus a pool of empty ones.
class BatchQueue {
public:
    explicit BatchQueue(size_t capacity) : capacity_(capacity) {}

    std::unique_ptr<Batch> take_empty() {
        std::unique_lock lock(mutex_);
        if (free_.empty()) return std::make_unique<Batch>();
        auto b = std::move(free_.back());
        free_.pop_back();
        b->clear();
        return b;
    }
    void recycle(std::unique_ptr<Batch> b) {
        std::lock_guard lock(mutex_);
        free_.push_back(std::move(b));
    }
    void push(std::unique_ptr<Batch> b) {
        std::unique_lock lock(mutex_);
        not_full_.wait(lock, [&] { return full_.size() < capacity_; });
        full_.push_back(std::move(b));
        not_empty_.notify_one();
    }
    std::unique_ptr<Batch> pop() {  // nullptr once closed and drained
        std::unique_lock lock(mutex_);
        not_empty_.wait(lock, [&] { return !full_.empty() || closed_; });
        if (full_.empty()) return nullptr;
        auto b = std::move(full_.front());
        full_.pop_front();
        not_full_.notify_one();
        return b;
    }
    void close() {
        std::lock_guard lock(mutex_);
        closed_ = true;
        not_empty_.notify_all();
    }

private:
    size_t capacity_;
    std::mutex mutex_;
    std::condition_variable not_full_, not_empty_;
    std::deque<std::unique_ptr<Batch>> full_;
    std::vector<std::unique_ptr<Batch>> free_;
    bool closed_ = false;
};

// What one worker found: counts per column and the first problems of each column.
struct WorkerTally {
    std::vector<ColumnCensus> columns;
    std::vector<std::vector<PositionedProblem>> problems;  // per column
    std::vector<std::vector<std::pair<Bytes, uint64_t>>> key_ids;  // per column; hex only at the end
    uint64_t problem_count = 0;

    void add_key_id(size_t column, const Bytes& key_id) {
        auto& list = key_ids[column];
        for (auto& [id, n] : list)
            if (id == key_id) {
                ++n;
                return;
            }
        list.emplace_back(key_id, 1);
    }
    void add_problem(size_t column, uint64_t position, const store::EncryptedColumn& c, std::string_view row,
                     std::string reason, std::string detail) {
        ++problem_count;
        auto& kept = problems[column];
        kept.push_back({column, position, {c.table, c.column, std::string(row), std::move(reason), std::move(detail)}});
        if (kept.size() >= 2 * problems_named) keep_first(kept, problems_named);  // memory stays bounded
    }
};

// Classifies a value by its key id alone (no decryption): what `status` shows.
seal::Failure classify(std::string_view text, const seal::KeyId& key_id, Bytes& found) {
    auto payload = seal::parse(text);
    if (!payload) return seal::Failure::malformed;
    found = payload->key_id;
    return std::equal(found.begin(), found.end(), key_id.begin(), key_id.end()) ? seal::Failure::none
                                                                              : seal::Failure::wrong_key;
}

struct CensusContext {
    const std::vector<ColumnCensus>& columns;  // with `listed` set
    const seal::KeyId& key_id;
    const CensusOptions& options;
};

void census_batch(std::optional<seal::Opener>& opener, const Batch& batch, const CensusContext& ctx, WorkerTally& tally) {
    Bytes found;
    for (size_t i = 0; i < batch.entries.size(); ++i) {
        const auto& e = batch.entries[i];
        std::string_view text = batch.text(e);
        seal::Failure failure;
        if (ctx.options.open_values) {
            failure = opener->open(text);
            found = opener->found_key_id();
        } else {
            failure = classify(text, ctx.key_id, found);
        }
        const ColumnCensus& column = ctx.columns[e.column];
        ColumnCensus& counts = tally.columns[e.column];
        uint64_t position = batch.first + i;
        switch (failure) {
        case seal::Failure::none:
            ++counts.sealed;
            tally.add_key_id(e.column, found);
            if (!column.listed && ctx.options.name_unlisted)
                tally.add_problem(e.column, position, column.column, batch.row(e), "unlisted",
                                  fmt::format("sealed by the db key (key id {}), but {} does not seal this column",
                                              seal::to_hex(ctx.key_id), ctx.options.release));
            break;
        case seal::Failure::wrong_key:
        case seal::Failure::authentication:
            ++counts.failed;
            tally.add_key_id(e.column, found);
            tally.add_problem(e.column, position, column.column, batch.row(e),
                              failure == seal::Failure::authentication ? "authentication"
                              : column.listed                          ? "wrong_key"
                                                                       : "other_key_id",
                              failure_detail(text, failure, ctx.key_id));
            break;
        case seal::Failure::malformed:
            ++counts.plaintext;
            if (column.listed) {
                bool looks_sealed = seal::may_be_payload(text);
                tally.add_problem(e.column, position, column.column, batch.row(e), looks_sealed ? "malformed" : "unsealed",
                                  looks_sealed ? failure_detail(text, failure, ctx.key_id)
                                               : "plaintext where a sealed value belongs");
            }
            break;
        }
    }
}

unsigned worker_count(const CensusOptions& options) {
    if (options.threads > 0) return options.threads;
    return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

uint64_t Census::sealed() const {
    return std::accumulate(columns.begin(), columns.end(), uint64_t{0},
                           [](uint64_t n, const ColumnCensus& c) { return n + c.sealed; });
}

uint64_t Census::failed() const {
    return std::accumulate(columns.begin(), columns.end(), uint64_t{0},
                           [](uint64_t n, const ColumnCensus& c) { return n + c.failed; });
}

uint64_t Census::blocking() const {
    return std::accumulate(columns.begin(), columns.end(), uint64_t{0},
                           [](uint64_t n, const ColumnCensus& c) { return n + c.failed + (c.listed ? c.plaintext : 0); });
}

bool blocks_rekey(const ValueProblem& problem) {
    return problem.reason != "unlisted" && problem.reason != "missing_column";
}

std::string failure_detail(std::string_view text, seal::Failure reason, const seal::KeyId& expected) {
    switch (reason) {
    case seal::Failure::wrong_key: {
        auto payload = seal::parse(text);
        std::string found = payload ? Botan::hex_encode(payload->key_id, false) : "?";
        return fmt::format("sealed under another key (key id {}, db key is {})", found, seal::to_hex(expected));
    }
    case seal::Failure::authentication:
        return "authentication failed: the value was modified or sealed with another key of the same id";
    case seal::Failure::malformed:
        return "not a sealed payload (bad base64 or layout)";
    case seal::Failure::none:
        break;
    }
    return "ok";
}

namespace {

void merge_key_ids(std::vector<std::pair<std::string, uint64_t>>& into,
                   const std::vector<std::pair<Bytes, uint64_t>>& from) {
    for (const auto& [bytes, n] : from) {
        std::string id = Botan::hex_encode(bytes, false);
        auto it = std::find_if(into.begin(), into.end(), [&](const auto& p) { return p.first == id; });
        if (it == into.end()) into.emplace_back(id, n);
        else it->second += n;
    }
}

Census merge(std::vector<ColumnCensus> columns, std::vector<WorkerTally>& tallies) {
    Census census;
    std::vector<PositionedProblem> all;
    for (auto& tally : tallies) {
        for (size_t c = 0; c < columns.size(); ++c) {
            columns[c].sealed += tally.columns[c].sealed;
            columns[c].failed += tally.columns[c].failed;
            columns[c].plaintext += tally.columns[c].plaintext;
            merge_key_ids(columns[c].by_key_id, tally.key_ids[c]);
            std::move(tally.problems[c].begin(), tally.problems[c].end(), std::back_inserter(all));
        }
        census.problem_count += tally.problem_count;
    }
    std::sort(all.begin(), all.end(), named_before);
    size_t kept_in_column = 0;
    for (size_t i = 0; i < all.size(); ++i) {
        kept_in_column = (i > 0 && all[i - 1].column == all[i].column) ? kept_in_column + 1 : 0;
        if (kept_in_column < problems_named) census.problems.push_back(std::move(all[i].problem));
    }
    for (auto& c : columns) std::sort(c.by_key_id.begin(), c.by_key_id.end());
    census.columns = std::move(columns);
    return census;
}

}  // namespace

Census take_census(store::KeyStore& store, const SecretBytes& db_key, const seal::KeyId& key_id,
                   const CensusOptions& options) {
    std::vector<store::TableColumns> tables = store.text_columns();
    std::vector<ColumnCensus> columns;
    std::vector<size_t> first_column;  // index of each table's first column in `columns`
    for (const auto& t : tables) {
        first_column.push_back(columns.size());
        for (const auto& c : t.columns) {
            ColumnCensus census;
            census.column = c;
            census.listed = options.listed && options.listed(c);
            columns.push_back(std::move(census));
        }
    }
    uint64_t total = 0;
    if (options.progress)
        for (const auto& t : tables) total += store.count_rows(t.table);

    CensusContext ctx{columns, key_id, options};
    unsigned workers = worker_count(options);
    BatchQueue queue(2 * workers);
    std::vector<WorkerTally> tallies(workers);
    for (auto& t : tallies) {
        t.columns.resize(columns.size());
        t.problems.resize(columns.size());
        t.key_ids.resize(columns.size());
    }
    std::vector<uint64_t> skipped(columns.size());  // plaintext the reader ruled out itself
    std::vector<std::thread> threads;
    for (unsigned w = 0; w < workers; ++w)
        threads.emplace_back([&, w] {
            std::optional<seal::Opener> opener;
            if (options.open_values) opener.emplace(db_key, key_id);
            while (auto batch = queue.pop()) {
                census_batch(opener, *batch, ctx, tallies[w]);
                queue.recycle(std::move(batch));
            }
        });

    uint64_t rows = 0, position = 0;
    try {
        auto batch = queue.take_empty();
        for (size_t t = 0; t < tables.size(); ++t) {
            store.scan_rows(tables[t], [&](const store::StoredRow& row) {
                for (size_t i = 0; i < row.values.size(); ++i) {
                    std::string_view text = row.values[i];
                    if (text.empty()) continue;
                    size_t column = first_column[t] + i;
                    // Plaintext in a column no release seals is never looked at again.
                    if (!columns[column].listed && !seal::may_be_payload(text)) {
                        ++skipped[column];
                        continue;
                    }
                    if (batch->entries.empty()) batch->first = position;
                    batch->add(static_cast<uint32_t>(column), row.row, text);
                    ++position;
                    if (batch->full()) {
                        queue.push(std::move(batch));
                        batch = queue.take_empty();
                    }
                }
                if (options.progress && (++rows & 0xfff) == 0) options.progress(rows, total);
            });
        }
        if (!batch->entries.empty()) queue.push(std::move(batch));
    } catch (...) {
        queue.close();
        for (auto& t : threads) t.join();
        throw;
    }
    queue.close();
    for (auto& t : threads) t.join();
    if (options.progress) options.progress(rows, total);
    for (size_t c = 0; c < columns.size(); ++c) columns[c].plaintext += skipped[c];
    return merge(std::move(columns), tallies);
}

}  // namespace ik::ops
