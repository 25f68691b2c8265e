#include "ops/scan.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <numeric>
#include <thread>

#include <botan/hex.h>
#include <fmt/format.h>

// One reader (this thread) streams values out of the database into batches; a few workers, each
// with its own cipher object, open them. Batches are recycled and the queue is bounded, so memory
// stays flat at any database size. Failures carry their (column, position) so the report comes
// out in exactly the order a single-threaded scan would give.

namespace ik::ops {
namespace {

constexpr size_t batch_values = 2048;
constexpr size_t batch_bytes = 1 << 20;

struct Batch {
    size_t column = 0;
    uint64_t first = 0;  // position of the first value within its column
    std::string arena;   // row labels and texts, back to back
    struct Entry { uint32_t row_at, row_size, text_at, text_size; };
    std::vector<Entry> entries;

    void clear() {  // a recycled batch must not keep the position of its last use
        column = 0;
        first = 0;
        arena.clear();
        entries.clear();
    }
    void add(const store::StoredValue& v) {
        Entry e{static_cast<uint32_t>(arena.size()), static_cast<uint32_t>(v.row.size()), 0,
                static_cast<uint32_t>(v.text.size())};
        arena.append(v.row);
        e.text_at = static_cast<uint32_t>(arena.size());
        arena.append(v.text);
        entries.push_back(e);
    }
    bool full() const { return entries.size() >= batch_values || arena.size() >= batch_bytes; }
    std::string_view row(const Entry& e) const { return {arena.data() + e.row_at, e.row_size}; }
    std::string_view text(const Entry& e) const { return {arena.data() + e.text_at, e.text_size}; }
};

struct PositionedFailure {
    size_t column;
    uint64_t position;
    ValueFailure failure;
};

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

void open_batch(seal::Opener& opener, const Batch& batch, const std::vector<store::EncryptedColumn>& columns,
                const seal::KeyId& key_id, std::vector<PositionedFailure>& failures) {
    for (size_t i = 0; i < batch.entries.size(); ++i) {
        const auto& e = batch.entries[i];
        seal::Failure failure = opener.open(batch.text(e));
        if (failure == seal::Failure::none) continue;
        const auto& column = columns[batch.column];
        failures.push_back({batch.column, batch.first + i,
                            {column.table, column.column, std::string(batch.row(e)), failure,
                             failure_detail(batch.text(e), failure, key_id)}});
    }
}

unsigned worker_count(const ScanOptions& options) {
    if (options.threads > 0) return options.threads;
    return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

uint64_t ScanReport::values() const {
    return std::accumulate(columns.begin(), columns.end(), uint64_t{0},
                           [](uint64_t n, const ColumnTally& c) { return n + c.values; });
}

uint64_t ScanReport::failed() const { return failures.size(); }

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

ScanReport scan_encrypted_values(store::KeyStore& store, const OpenDbKey& db_key, const ScanOptions& options) {
    ScanReport report;
    std::vector<store::EncryptedColumn> columns = store.encrypted_columns();
    uint64_t total = 0;
    if (options.progress)
        for (const auto& column : columns) total += store.count_values(column);

    unsigned workers = worker_count(options);
    BatchQueue queue(2 * workers);
    std::vector<std::vector<PositionedFailure>> failures(workers);
    std::vector<std::thread> threads;
    for (unsigned w = 0; w < workers; ++w)
        threads.emplace_back([&, w] {
            seal::Opener opener(db_key.plaintext, db_key.key_id);
            while (auto batch = queue.pop()) {
                open_batch(opener, *batch, columns, db_key.key_id, failures[w]);
                queue.recycle(std::move(batch));
            }
        });

    uint64_t done = 0;
    try {
        for (size_t c = 0; c < columns.size(); ++c) {
            ColumnTally tally{columns[c]};
            auto batch = queue.take_empty();
            batch->column = c;
            store.scan_values(columns[c], [&](const store::StoredValue& value) {
                batch->add(value);
                ++tally.values;
                if (batch->full()) {
                    queue.push(std::move(batch));
                    batch = queue.take_empty();
                    batch->column = c;
                    batch->first = tally.values;
                }
                if (options.progress && (++done & 0xfff) == 0) options.progress(done, total);
                return true;
            });
            if (!batch->entries.empty()) queue.push(std::move(batch));
            report.columns.push_back(std::move(tally));
        }
    } catch (...) {
        queue.close();
        for (auto& t : threads) t.join();
        throw;
    }
    queue.close();
    for (auto& t : threads) t.join();
    if (options.progress) options.progress(done, total);

    std::vector<PositionedFailure> all;
    for (auto& list : failures) std::move(list.begin(), list.end(), std::back_inserter(all));
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
        return std::tie(a.column, a.position) < std::tie(b.column, b.position);
    });
    for (auto& f : all) {
        ++report.columns[f.column].failed;
        report.failures.push_back(std::move(f.failure));
    }
    return report;
}

}  // namespace ik::ops
