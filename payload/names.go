package payload

import (
	"context"
	"time"
)

// Names of the activities, as the worker registers them: the method
// names of *activities.Activities and *activities.Cleaner. Workflows
// schedule activities by these names, so workflow code does not link the
// activities' clients; recorded histories name activities by them, so
// they never change (a test in package activities holds them to the
// registered methods).
const (
	CreateExport        = "CreateExport"
	GetExport           = "GetExport"
	FetchGateways       = "FetchGateways"
	DownloadExport      = "DownloadExport"
	SplitExport         = "SplitExport"
	SplitStaged         = "SplitStaged"
	LandLive            = "LandLive"
	RemoveStaged        = "RemoveStaged"
	ReadManifest        = "ReadManifest"
	PullPages           = "PullPages"
	StageChunk          = "StageChunk"
	MergeLoad           = "MergeLoad"
	CheckLoad           = "CheckLoad"
	CleanupLoad         = "CleanupLoad"
	RefreshDimensions   = "RefreshDimensions"
	ReadCheckpoint      = "ReadCheckpoint"
	CheckpointTime      = "CheckpointTime"
	WriteCheckpoint     = "WriteCheckpoint"
	CountSource         = "CountSource"
	CountSourceByWindow = "CountSourceByWindow"
	CountWarehouse      = "CountWarehouse"
	CountFact           = "CountFact"
	CountFactByWindow   = "CountFactByWindow"
	WorkflowOutcome     = "WorkflowOutcome"
	AuditWarehouse      = "AuditWarehouse"
	NewestSourceEvent   = "NewestSourceEvent"
	WriteAudit          = "WriteAudit"
	RecordReconcile     = "RecordReconcile"
	ExportQuarantine    = "ExportQuarantine"
	SplitQuarantine     = "SplitQuarantine"
	CleanStaging        = "CleanStaging" // registered on *activities.Cleaner
	MergeLoads          = "MergeLoads"
	CheckLoads          = "CheckLoads"
	LandLiveChunks      = "LandLiveChunks"
	DeferLoad           = "DeferLoad"
	PendingLoads        = "PendingLoads"
	FinishLoads         = "FinishLoads"
)

// Activities is what *activities.Activities implements: one method per
// activity, named as above, with the input and result types of this
// package. The activities package asserts it at compile time, so an
// activity's signature cannot drift from what workflows send and decode.
type Activities interface {
	CreateExport(context.Context, CreateExportInput) (Export, error)
	GetExport(ctx context.Context, id string) (Export, error)
	FetchGateways(context.Context) ([]Gateway, error)
	DownloadExport(context.Context, DownloadInput) (DownloadResult, error)
	SplitExport(context.Context, SplitInput) (Manifest, error)
	SplitStaged(context.Context, SplitStagedInput) (SplitStagedResult, error)
	LandLive(context.Context, LandLiveInput) (LandLiveResult, error)
	RemoveStaged(ctx context.Context, keys []string) error
	ReadManifest(ctx context.Context, loadID string) (Manifest, error)
	PullPages(context.Context, PullInput) (PullResult, error)
	StageChunk(context.Context, ChunkInput) error
	MergeLoad(context.Context, MergeInput) error
	CheckLoad(ctx context.Context, loadID string) (Completeness, error)
	CleanupLoad(ctx context.Context, loadID string) error
	RefreshDimensions(context.Context, []Gateway) error
	ReadCheckpoint(ctx context.Context, key string) (string, error)
	CheckpointTime(ctx context.Context, key string) (time.Time, error)
	WriteCheckpoint(context.Context, CheckpointInput) error
	CountSource(context.Context, Window) (int64, error)
	CountSourceByWindow(context.Context, Steps) ([]int64, error)
	CountWarehouse(context.Context, Window) (WarehouseCount, error)
	CountFact(context.Context, Window) (int64, error)
	CountFactByWindow(context.Context, Steps) ([]int64, error)
	WorkflowOutcome(ctx context.Context, workflowID string) (RunOutcome, error)
	AuditWarehouse(context.Context, AuditWarehouseInput) (AuditWarehouseResult, error)
	NewestSourceEvent(context.Context, NewestInput) (time.Time, error)
	WriteAudit(context.Context, AuditRow) error
	RecordReconcile(context.Context, ReconcileState) error
	ExportQuarantine(context.Context, ExportQuarantineInput) (ExportQuarantineResult, error)
	SplitQuarantine(context.Context, SplitQuarantineInput) (Manifest, error)
	MergeLoads(context.Context, MergeLoadsInput) error
	CheckLoads(ctx context.Context, loadIDs []string) (map[string]Completeness, error)
	LandLiveChunks(context.Context, ChunksInput) (int64, error)
	DeferLoad(context.Context, PendingLoad) error
	PendingLoads(context.Context, PendingLoadsInput) (PendingLoadsResult, error)
	FinishLoads(ctx context.Context, loadIDs []string) error
}

// Cleaner is what *activities.Cleaner implements.
type Cleaner interface {
	CleanStaging(context.Context, CleanupInput) (CleanupResult, error)
}
