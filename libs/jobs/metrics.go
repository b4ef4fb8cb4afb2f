package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// queueDepthTimeout bounds the query a scrape runs.
const queueDepthTimeout = 2 * time.Second

// QueueDepth is a Prometheus collector of the jobs waiting or running per queue and state
// (river_queue_jobs{queue,state}), read from the service's river_job table at scrape time,
// so every replica reports the same numbers and nothing is counted twice in memory.
type QueueDepth struct {
	pool *pgxpool.Pool
	desc *prometheus.Desc
}

// NewQueueDepth is the collector for the River tables on pool's search_path.
func NewQueueDepth(pool *pgxpool.Pool) *QueueDepth {
	return &QueueDepth{pool: pool, desc: prometheus.NewDesc("river_queue_jobs",
		"River jobs not yet finished, by queue and state.", []string{"queue", "state"}, nil)}
}

// Describe implements prometheus.Collector.
func (q *QueueDepth) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

// Collect implements prometheus.Collector; a failed query reports nothing for this scrape.
func (q *QueueDepth) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), queueDepthTimeout)
	defer cancel()
	rows, err := q.pool.Query(ctx, `SELECT queue, state::text, count(*) FROM river_job
		WHERE state IN ('available', 'scheduled', 'running', 'retryable', 'pending')
		GROUP BY queue, state`)
	if err != nil {
		return
	}
	defer rows.Close()
	for rows.Next() {
		var queue, state string
		var n int64
		if err := rows.Scan(&queue, &state, &n); err != nil {
			return
		}
		ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, float64(n), queue, state)
	}
}
