//! The change log's event format. See docs/design/change-log.md.
//!
//! An event is one accepted write: the operation and every value the server chose while
//! accepting it (IDs, timestamps, version numbers). Applying the same events in the same order
//! to an empty workspace therefore rebuilds exactly the same state: nothing in `apply` may
//! read a clock or a random source.

use crate::float::F64;
use crate::hlc::Hlc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// One span of a trace as OTLP delivered it (docs/design/traces.md): its IDs in hex, its
/// times, and its whole content as the protobuf JSON mapping of OpenTelemetry's `Span`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSpan {
    pub span_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    pub name: String,
    pub start_ns: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ns: Option<i64>,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    pub key: String,
    pub value: F64,
    pub timestamp: i64,
    pub step: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInput {
    /// Chosen by the server when the dataset is first seen in the experiment; reused after.
    pub dataset_id: String,
    pub dataset: Dataset,
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelOutput {
    pub model_id: String,
    pub step: i64,
}

/// Every kind of change a workspace can undergo. The serialized tag (`op`) is the operation's
/// name in the log; renaming a variant is a log-format change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "payload")]
pub enum Op {
    CreateWorkspace {
        description: String,
        default_artifact_root: Option<String>,
        time: i64,
    },
    UpdateWorkspace {
        description: Option<String>,
        default_artifact_root: Option<String>,
        time: i64,
    },
    /// Soft delete: the workspace is hidden until it is restored or purged.
    DeleteWorkspace {
        time: i64,
    },
    RestoreWorkspace {
        time: i64,
    },
    /// A deleted workspace's state, gone for good (its change log stays).
    PurgeWorkspace {},
    /// In-place point-in-time restore: the state becomes what events 1..=seq built. The log
    /// itself only grows; everything after `seq` stays in it, to audit or restore to again.
    RewindWorkspace {
        seq: u64,
        time: i64,
    },
    /// How long deleted objects stay restorable (days), and whether purge protection is on.
    SetRetention {
        days: u32,
        purge_protection: bool,
        time: i64,
    },
    /// A deleted run, gone for good after its retention period.
    PurgeRun {
        run_id: String,
    },
    /// A deleted experiment with its runs, datasets and logged models, gone for good.
    PurgeExperiment {
        experiment_id: String,
    },

    CreateExperiment {
        experiment_id: String,
        name: String,
        artifact_location: String,
        tags: Vec<KeyValue>,
        time: i64,
    },
    RenameExperiment {
        experiment_id: String,
        new_name: String,
        time: i64,
    },
    DeleteExperiment {
        experiment_id: String,
        time: i64,
    },
    RestoreExperiment {
        experiment_id: String,
        time: i64,
    },
    SetExperimentTag {
        experiment_id: String,
        key: String,
        value: String,
        time: i64,
    },
    DeleteExperimentTag {
        experiment_id: String,
        key: String,
        time: i64,
    },

    CreateRun {
        run_id: String,
        experiment_id: String,
        user_id: String,
        run_name: String,
        start_time: i64,
        artifact_uri: String,
        tags: Vec<KeyValue>,
    },
    UpdateRun {
        run_id: String,
        status: Option<String>,
        end_time: Option<i64>,
        run_name: Option<String>,
    },
    DeleteRun {
        run_id: String,
        time: i64,
    },
    RestoreRun {
        run_id: String,
    },
    /// log-metric, log-parameter, set-tag and log-batch all become this one operation.
    LogBatch {
        run_id: String,
        metrics: Vec<MetricPoint>,
        params: Vec<KeyValue>,
        tags: Vec<KeyValue>,
    },
    DeleteTag {
        run_id: String,
        key: String,
    },
    LogInputs {
        run_id: String,
        datasets: Vec<DatasetInput>,
        model_ids: Vec<String>,
    },
    LogOutputs {
        run_id: String,
        models: Vec<ModelOutput>,
    },

    CreateLoggedModel {
        model_id: String,
        experiment_id: String,
        name: String,
        artifact_location: String,
        model_type: Option<String>,
        source_run_id: Option<String>,
        params: Vec<KeyValue>,
        tags: Vec<KeyValue>,
        time: i64,
    },
    FinalizeLoggedModel {
        model_id: String,
        status: String,
        time: i64,
    },
    DeleteLoggedModel {
        model_id: String,
        time: i64,
    },
    RestoreLoggedModel {
        model_id: String,
        time: i64,
    },
    PurgeLoggedModel {
        model_id: String,
    },
    SetLoggedModelTags {
        model_id: String,
        tags: Vec<KeyValue>,
        time: i64,
    },
    DeleteLoggedModelTag {
        model_id: String,
        key: String,
        time: i64,
    },
    LogLoggedModelParams {
        model_id: String,
        params: Vec<KeyValue>,
        time: i64,
    },

    CreateRegisteredModel {
        name: String,
        description: Option<String>,
        tags: Vec<KeyValue>,
        time: i64,
    },
    RenameRegisteredModel {
        name: String,
        new_name: String,
        time: i64,
    },
    UpdateRegisteredModel {
        name: String,
        description: Option<String>,
        time: i64,
    },
    /// Soft delete of a model with its live versions (marked with the same time).
    DeleteRegisteredModel {
        name: String,
        #[serde(default)]
        time: i64,
    },
    RestoreRegisteredModel {
        name: String,
        time: i64,
    },
    PurgeRegisteredModel {
        name: String,
    },
    SetRegisteredModelTag {
        name: String,
        key: String,
        value: String,
    },
    DeleteRegisteredModelTag {
        name: String,
        key: String,
    },
    SetRegisteredModelAlias {
        name: String,
        alias: String,
        version: i64,
    },
    DeleteRegisteredModelAlias {
        name: String,
        alias: String,
    },
    CreateModelVersion {
        name: String,
        version: i64,
        source: String,
        run_id: Option<String>,
        run_link: Option<String>,
        description: Option<String>,
        tags: Vec<KeyValue>,
        user_id: String,
        model_id: Option<String>,
        /// Where the version's files are: resolved when the version is created.
        storage_location: String,
        time: i64,
    },
    UpdateModelVersion {
        name: String,
        version: i64,
        description: Option<String>,
        time: i64,
    },
    TransitionModelVersionStage {
        name: String,
        version: i64,
        stage: String,
        archive_existing: bool,
        time: i64,
    },
    DeleteModelVersion {
        name: String,
        version: i64,
        time: i64,
    },
    RestoreModelVersion {
        name: String,
        version: i64,
        time: i64,
    },
    PurgeModelVersion {
        name: String,
        version: i64,
    },
    SetModelVersionTag {
        name: String,
        version: i64,
        key: String,
        value: String,
    },
    DeleteModelVersionTag {
        name: String,
        version: i64,
        key: String,
    },

    /// An artifact's bytes were durably stored at `path` (relative to the workspace's artifact
    /// root) before this event was written; the event names their size and SHA-256.
    PutArtifact {
        path: String,
        size: u64,
        sha256: String,
    },
    /// Everything at or below `path` was removed from the artifact store.
    DeleteArtifacts {
        path: String,
    },

    // Access (only in the `_access` workspace; see docs/design/access.md). Secrets never
    // appear: passwords as argon2id PHC strings, tokens as their SHA-256.
    CreatePrincipal {
        principal_id: String,
        name: String,
        /// `user` or `service`.
        kind: String,
        /// A service identity's workspace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
        time: i64,
    },
    SetPassword {
        principal_id: String,
        password_hash: String,
        time: i64,
    },
    DeletePrincipal {
        principal_id: String,
        time: i64,
    },
    IssueToken {
        token_id: String,
        principal_id: String,
        token_sha256: String,
        label: String,
        expires_ms: Option<i64>,
        time: i64,
    },
    RevokeToken {
        token_id: String,
        time: i64,
    },
    Assign {
        assignment_id: String,
        principal_id: String,
        role: String,
        scope: String,
        /// Set for an elevation: in force until this instant only.
        until_ms: Option<i64>,
        reason: Option<String>,
        /// Set for an eligibility: grants nothing, allows elevating to `role` for this long.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        eligible_for_ms: Option<i64>,
        time: i64,
    },
    Unassign {
        assignment_id: String,
        time: i64,
    },
    /// `no-delete` or `read-only` on a scope and everything below it.
    Lock {
        lock_id: String,
        scope: String,
        kind: String,
        reason: String,
        /// Who set it (also the event's principal), shown in every refusal it causes.
        set_by: String,
        time: i64,
    },
    Unlock {
        lock_id: String,
        time: i64,
    },
    /// A custom role: action patterns (see `access::validate_pattern`); defining it again
    /// replaces its actions.
    DefineRole {
        name: String,
        actions: Vec<String>,
        /// Set for a role made through MLflow's roles API: its MLflow shape, from which
        /// `actions` were derived.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mlflow: Option<crate::access::MlflowRole>,
        time: i64,
    },
    DropRole {
        name: String,
        time: i64,
    },
    AddMember {
        group_id: String,
        member_id: String,
        time: i64,
    },
    RemoveMember {
        group_id: String,
        member_id: String,
        time: i64,
    },
    /// A version of an environment: exactly one of a container image pinned by digest and a
    /// Python environment specification kept as an artifact (workspace-relative path and the
    /// SHA-256 of its bytes). Immutable once created.
    CreateEnvironment {
        name: String,
        version: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spec_path: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spec_sha256: Option<String>,
        description: String,
        time: i64,
    },
    /// A version of a data asset: `uri_file` or `uri_folder` at `uri`, with the content hash
    /// of the bytes when tandem's own artifact store holds them. Immutable once created.
    CreateDataAsset {
        name: String,
        version: i64,
        asset_type: String,
        uri: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
        description: String,
        time: i64,
    },
    /// Soft delete of one version of an asset (`kind`: `environment` or `data-asset`).
    DeleteAsset {
        kind: String,
        name: String,
        version: i64,
        time: i64,
    },
    RestoreAsset {
        kind: String,
        name: String,
        version: i64,
    },
    PurgeAsset {
        kind: String,
        name: String,
        version: i64,
    },
    /// A job accepted into the queue: its spec as validated and normalized (JSON), with the
    /// caller's idempotency key when given.
    SubmitJob {
        job_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        spec: String,
        time: i64,
    },
    /// Cancel asked for: a queued job is cancelled at once; a running attempt is stopped by
    /// its region's executor, which then records how it ended.
    CancelJob {
        job_id: String,
        time: i64,
    },
    /// Attempt `attempt` of a job given to a compute target of `region`; its MLflow run is
    /// created in the same transaction.
    AssignAttempt {
        job_id: String,
        attempt: i64,
        region: String,
        compute: String,
        run_id: String,
        /// The incarnation of `region` that runs the attempt (its region lease at the
        /// witness): a later incarnation of the region does not have it.
        #[serde(default)]
        incarnation: u64,
        time: i64,
    },
    /// How an attempt ended (`completed`, `failed`, `timed_out`, `cancelled`, `lost`) and the
    /// job's state after it (`queued` again for a retry or a lost attempt, or final).
    FinishAttempt {
        job_id: String,
        attempt: i64,
        outcome: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i64>,
        job_state: String,
        time: i64,
    },
    /// A workspace's data key, wrapped (AES-256-GCM) by the master key `master_key_id`
    /// (docs/design/vault.md). The key itself is never in the log.
    CreateDataKey {
        dek_id: String,
        master_key_id: String,
        wrapped: String,
        time: i64,
    },
    /// The same data key wrapped by another master key (a master-key rotation).
    RewrapDataKey {
        dek_id: String,
        master_key_id: String,
        wrapped: String,
        time: i64,
    },
    /// A version of a secret: its value sealed with data key `dek_id` (only ciphertext is
    /// ever logged), and its metadata. The first version creates the secret.
    SetSecret {
        secret_id: String,
        name: String,
        version: i64,
        dek_id: String,
        sealed: String,
        content_type: String,
        tags: Vec<KeyValue>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_before: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auth_config: Option<String>,
        by: String,
        time: i64,
    },
    SetSecretVersionEnabled {
        secret_id: String,
        version: i64,
        enabled: bool,
        time: i64,
    },
    DeleteSecret {
        secret_id: String,
        time: i64,
    },
    RecoverSecret {
        secret_id: String,
        time: i64,
    },
    PurgeSecret {
        secret_id: String,
    },
    /// An object of MLflow's AI gateway (`kind`: `endpoint`, `model_definition`,
    /// `budget_policy`, or `secret` for the gateway's view of a vault secret), created or
    /// replaced whole: `doc` is its JSON document. Never holds a secret value.
    PutGatewayObject {
        kind: String,
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        doc: String,
        time: i64,
    },
    DeleteGatewayObject {
        kind: String,
        id: String,
        time: i64,
    },
    /// Spans of one trace of experiment `experiment_id`, from one OTLP export request. `info`
    /// (the trace's info document, docs/design/traces.md) is set when these spans create the
    /// trace or update what spans decide of it (times, state, name) before the client's own
    /// `StartTraceV3` has finalized it.
    LogSpans {
        trace_id: String,
        experiment_id: String,
        spans: Vec<TraceSpan>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        info: Option<String>,
        time: i64,
    },
    /// A trace's info as the client finalizes it (`StartTraceV3`): times, state, previews,
    /// metadata and tags.
    StartTrace {
        trace_id: String,
        experiment_id: String,
        info: String,
        time: i64,
    },
    SetTraceTag {
        trace_id: String,
        key: String,
        value: String,
        time: i64,
    },
    DeleteTraceTag {
        trace_id: String,
        key: String,
        time: i64,
    },
    /// Traces deleted (soft: recoverable by a point-in-time restore, purged by retention).
    DeleteTraces {
        trace_ids: Vec<String>,
        time: i64,
    },
    /// One object of MLflow 3's GenAI side (docs/design/traces.md), created or replaced
    /// whole: `kind` says which (`assessment`, `trace_run`, `trace_prompt`, ...), `parent` the
    /// object it hangs off (an assessment's trace), `doc` its JSON document.
    PutGenaiObject {
        kind: String,
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        doc: String,
        time: i64,
    },
    DeleteGenaiObject {
        kind: String,
        id: String,
        time: i64,
    },
    /// Deleted traces past their retention, removed for good with their spans, tags,
    /// assessments and links.
    PurgeTraces {
        trace_ids: Vec<String>,
    },
}

impl Op {
    /// Splits the operation into the two columns stored in the log: name and payload JSON.
    pub fn encode(&self) -> (String, String) {
        // Serialized straight to text and cut apart: `{"op":"Name","payload":{...}}` is how
        // serde writes an adjacently tagged enum (tag first). Going through a JSON value
        // instead built a map per metric point and was a tenth of a 1,000-point batch's time.
        let text = serde_json::to_string(self).expect("ops always serialize");
        let rest = text
            .strip_prefix("{\"op\":\"")
            .expect("ops serialize with their tag first");
        let end = rest.find('"').expect("op names are plain words");
        let name = rest[..end].to_owned();
        let payload = match rest[end..].strip_prefix("\",\"payload\":") {
            Some(p) => p
                .strip_suffix('}')
                .expect("ops serialize to objects")
                .to_owned(),
            None => "null".to_owned(),
        };
        (name, payload)
    }

    pub fn decode(name: &str, payload: &str) -> Result<Op, serde_json::Error> {
        let payload: serde_json::Value = serde_json::from_str(payload)?;
        serde_json::from_value(serde_json::json!({ "op": name, "payload": payload }))
    }
}

/// One entry of a workspace's change log, as stored and as served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub workspace: String,
    /// 1, 2, 3, ... with no gaps, per workspace.
    pub seq: u64,
    /// The leadership epoch under which the write was accepted (0 outside a multi-region
    /// deployment). Never decreases along a log.
    pub epoch: u64,
    pub hlc: Hlc,
    /// The region that accepted the write.
    pub origin: String,
    /// Who asked for it.
    pub principal: String,
    pub op: String,
    /// The operation's payload, exactly as checksummed.
    pub payload: String,
    /// Hex SHA-256 over the previous event's checksum and this event's fields.
    pub checksum: String,
}

/// The checksum that precedes the first event of every workspace.
pub const GENESIS_CHECKSUM: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// Chains each event to its predecessor, so a lost, reordered, altered or duplicated event
/// is detected by whoever reads the log from any earlier verified point.
#[allow(clippy::too_many_arguments)]
pub fn checksum(
    prev: &str,
    workspace: &str,
    seq: u64,
    epoch: u64,
    hlc: Hlc,
    origin: &str,
    principal: &str,
    op: &str,
    payload: &str,
) -> String {
    let mut h = Sha256::new();
    // Length-prefix each field so that no two different events hash the same bytes.
    for field in [
        prev.as_bytes(),
        workspace.as_bytes(),
        &seq.to_be_bytes(),
        &epoch.to_be_bytes(),
        &hlc.0.to_be_bytes(),
        origin.as_bytes(),
        principal.as_bytes(),
        op.as_bytes(),
        payload.as_bytes(),
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field);
    }
    crate::ids::hex(&h.finalize())
}

impl Event {
    #[allow(clippy::too_many_arguments)]
    pub fn seal(
        workspace: &str,
        seq: u64,
        epoch: u64,
        hlc: Hlc,
        origin: &str,
        principal: &str,
        op: &Op,
        prev_checksum: &str,
    ) -> Event {
        let (name, payload) = op.encode();
        let checksum = checksum(
            prev_checksum,
            workspace,
            seq,
            epoch,
            hlc,
            origin,
            principal,
            &name,
            &payload,
        );
        Event {
            workspace: workspace.to_owned(),
            seq,
            epoch,
            hlc,
            origin: origin.to_owned(),
            principal: principal.to_owned(),
            op: name,
            payload,
            checksum,
        }
    }

    pub fn verify(&self, prev_checksum: &str) -> bool {
        checksum(
            prev_checksum,
            &self.workspace,
            self.seq,
            self.epoch,
            self.hlc,
            &self.origin,
            &self.principal,
            &self.op,
            &self.payload,
        ) == self.checksum
    }

    pub fn decode_op(&self) -> Result<Op, serde_json::Error> {
        Op::decode(&self.op, &self.payload)
    }
}

/// Why a sequence of events cannot be trusted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChainError {
    #[error("event {seq}: expected sequence number {expected}")]
    Gap { seq: u64, expected: u64 },
    #[error("event {seq}: checksum does not match its contents and predecessor")]
    BadChecksum { seq: u64 },
    #[error("event {seq}: clock went backwards")]
    ClockBackwards { seq: u64 },
    #[error("event {seq}: from epoch {epoch}, older than epoch {current} already in the log")]
    StaleEpoch { seq: u64, epoch: u64, current: u64 },
    #[error("event {seq}: payload does not decode: {reason}")]
    Undecodable { seq: u64, reason: String },
}

/// Checks that `events` continue a chain whose last verified event had `prev_seq` and
/// `prev_checksum`: consecutive numbers, increasing clocks, valid checksums, decodable ops.
pub fn verify_chain(
    prev_seq: u64,
    prev_checksum: &str,
    prev_hlc: Hlc,
    events: &[Event],
) -> Result<(), ChainError> {
    verify_chain_from(prev_seq, prev_checksum, prev_hlc, 0, events)
}

/// As [`verify_chain`], and every event's epoch must be at least `min_epoch` and never
/// decrease: a write accepted under an epoch that was already superseded is refused.
pub fn verify_chain_from(
    prev_seq: u64,
    prev_checksum: &str,
    prev_hlc: Hlc,
    min_epoch: u64,
    events: &[Event],
) -> Result<(), ChainError> {
    let (mut seq, mut sum, mut hlc, mut epoch) =
        (prev_seq, prev_checksum.to_owned(), prev_hlc, min_epoch);
    for e in events {
        if e.epoch < epoch {
            return Err(ChainError::StaleEpoch {
                seq: e.seq,
                epoch: e.epoch,
                current: epoch,
            });
        }
        epoch = e.epoch;
        if e.seq != seq + 1 {
            return Err(ChainError::Gap {
                seq: e.seq,
                expected: seq + 1,
            });
        }
        if !e.verify(&sum) {
            return Err(ChainError::BadChecksum { seq: e.seq });
        }
        if e.hlc <= hlc {
            return Err(ChainError::ClockBackwards { seq: e.seq });
        }
        e.decode_op().map_err(|err| ChainError::Undecodable {
            seq: e.seq,
            reason: err.to_string(),
        })?;
        seq = e.seq;
        sum = e.checksum.clone();
        hlc = e.hlc;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<Event> {
        let mut prev = GENESIS_CHECKSUM.to_owned();
        (1..=n)
            .map(|seq| {
                let op = Op::SetExperimentTag {
                    experiment_id: "0".into(),
                    key: format!("k{seq}"),
                    value: "v".into(),
                    time: seq as i64,
                };
                let e = Event::seal(
                    "default",
                    seq,
                    seq / 3,
                    Hlc::new(1000 + seq, 0),
                    "local",
                    "alice",
                    &op,
                    &prev,
                );
                prev = e.checksum.clone();
                e
            })
            .collect()
    }

    #[test]
    fn ops_round_trip_through_the_log_encoding() {
        let op = Op::LogBatch {
            run_id: "r".into(),
            metrics: vec![MetricPoint {
                key: "m".into(),
                value: F64(f64::NAN),
                timestamp: 1,
                step: 2,
                model_id: None,
                dataset_name: None,
                dataset_digest: None,
            }],
            params: vec![KeyValue {
                key: "p".into(),
                value: "1".into(),
            }],
            tags: vec![],
        };
        let (name, payload) = op.encode();
        assert_eq!(name, "LogBatch");
        let back = Op::decode(&name, &payload).unwrap();
        assert_eq!(back.encode(), (name, payload));
    }

    #[test]
    fn the_encoding_cut_from_text_is_the_tagged_json_value() {
        let ops = [
            Op::PurgeWorkspace {},
            Op::SetExperimentTag {
                experiment_id: "0".into(),
                key: "k\"op\":\"x".into(),
                value: "}\",\"payload\":{".into(),
                time: 1,
            },
            Op::LogBatch {
                run_id: "r".into(),
                metrics: vec![MetricPoint {
                    key: "m".into(),
                    value: F64(f64::INFINITY),
                    timestamp: 1,
                    step: 2,
                    model_id: Some("m-1".into()),
                    dataset_name: None,
                    dataset_digest: None,
                }],
                params: vec![],
                tags: vec![KeyValue {
                    key: "t".into(),
                    value: "é\n".into(),
                }],
            },
        ];
        for op in ops {
            let (name, payload) = op.encode();
            let whole = serde_json::to_value(&op).unwrap();
            assert_eq!(name, whole["op"].as_str().unwrap());
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&payload).unwrap(),
                whole["payload"],
                "{op:?}"
            );
            assert_eq!(Op::decode(&name, &payload).unwrap(), op);
        }
    }

    #[test]
    fn a_valid_chain_verifies_and_any_tampering_is_detected() {
        let events = chain(5);
        verify_chain(0, GENESIS_CHECKSUM, Hlc(0), &events).unwrap();

        let mut altered = events.clone();
        altered[2].payload = altered[2].payload.replace("\"v\"", "\"w\"");
        assert_eq!(
            verify_chain(0, GENESIS_CHECKSUM, Hlc(0), &altered),
            Err(ChainError::BadChecksum { seq: 3 })
        );

        let mut gap = events.clone();
        gap.remove(1);
        assert_eq!(
            verify_chain(0, GENESIS_CHECKSUM, Hlc(0), &gap),
            Err(ChainError::Gap {
                seq: 3,
                expected: 2
            })
        );

        let mut swapped = events.clone();
        swapped.swap(3, 4);
        assert!(verify_chain(0, GENESIS_CHECKSUM, Hlc(0), &swapped).is_err());

        // Resuming from the middle needs only the last verified event.
        verify_chain(2, &events[1].checksum, events[1].hlc, &events[2..]).unwrap();

        // An event from an epoch older than one already seen is refused.
        assert_eq!(
            verify_chain_from(2, &events[1].checksum, events[1].hlc, 9, &events[2..]),
            Err(ChainError::StaleEpoch {
                seq: 3,
                epoch: 1,
                current: 9
            })
        );
    }
}
