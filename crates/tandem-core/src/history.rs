//! One object's history, cut out of a workspace's change log: what single-object restore
//! re-applies to bring back an experiment (with its runs and logged models), a run, or a
//! registered model (with its versions) exactly as it was at some instant.
//!
//! The object's operations are replayed as new events, so the object comes back *active*:
//! its deletions, restorations and purges are left out. Everything else (values, times, IDs,
//! versions) is as the log recorded it.

use crate::event::Op;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Experiment(String),
    Run(String),
    RegisteredModel(String),
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Object::Experiment(id) => write!(f, "experiment {id}"),
            Object::Run(id) => write!(f, "run {id}"),
            Object::RegisteredModel(name) => write!(f, "registered model '{name}'"),
        }
    }
}

/// Why an object cannot be cut out of a log prefix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistoryError {
    #[error("{0} did not exist at that instant")]
    NotThere(Object),
    #[error("{0} had been purged by that instant")]
    Purged(Object),
}

/// The object's operations in `ops` (the [`effective`] operations of a log up to the instant),
/// without its deletions, restorations and purges. For a registered model, renames are
/// followed, and every operation is rewritten to the name it had at the end.
pub fn history(ops: &[Op], object: &Object) -> Result<Vec<Op>, HistoryError> {
    match object {
        Object::Run(id) => run_history(ops, id, object),
        Object::Experiment(id) => experiment_history(ops, id, object),
        Object::RegisteredModel(name) => model_history(ops, name, object),
    }
}

fn run_of(op: &Op) -> Option<&str> {
    match op {
        Op::CreateRun { run_id, .. }
        | Op::UpdateRun { run_id, .. }
        | Op::DeleteRun { run_id, .. }
        | Op::RestoreRun { run_id }
        | Op::LogBatch { run_id, .. }
        | Op::DeleteTag { run_id, .. }
        | Op::LogInputs { run_id, .. }
        | Op::LogOutputs { run_id, .. }
        | Op::PurgeRun { run_id } => Some(run_id),
        _ => None,
    }
}

fn logged_model_of(op: &Op) -> Option<&str> {
    match op {
        Op::CreateLoggedModel { model_id, .. }
        | Op::FinalizeLoggedModel { model_id, .. }
        | Op::DeleteLoggedModel { model_id, .. }
        | Op::RestoreLoggedModel { model_id, .. }
        | Op::SetLoggedModelTags { model_id, .. }
        | Op::DeleteLoggedModelTag { model_id, .. }
        | Op::LogLoggedModelParams { model_id, .. }
        | Op::PurgeLoggedModel { model_id } => Some(model_id),
        _ => None,
    }
}

fn experiment_of(op: &Op) -> Option<&str> {
    match op {
        Op::CreateExperiment { experiment_id, .. }
        | Op::RenameExperiment { experiment_id, .. }
        | Op::DeleteExperiment { experiment_id, .. }
        | Op::RestoreExperiment { experiment_id, .. }
        | Op::SetExperimentTag { experiment_id, .. }
        | Op::DeleteExperimentTag { experiment_id, .. }
        | Op::PurgeExperiment { experiment_id } => Some(experiment_id),
        _ => None,
    }
}

/// The restored object's own deletions, restorations and purges: left out, so that it comes
/// back active. Its parts' (a run of an experiment, a version of a model) are kept, so that
/// what was deleted at the instant comes back deleted (and restorable).
fn is_own_lifecycle(op: &Op, object: &Object) -> bool {
    match object {
        Object::Run(_) => matches!(
            op,
            Op::DeleteRun { .. } | Op::RestoreRun { .. } | Op::PurgeRun { .. }
        ),
        Object::Experiment(_) => matches!(
            op,
            Op::DeleteExperiment { .. }
                | Op::RestoreExperiment { .. }
                | Op::PurgeExperiment { .. }
                | Op::PurgeRun { .. }
                | Op::PurgeLoggedModel { .. }
        ),
        Object::RegisteredModel(_) => matches!(
            op,
            Op::DeleteRegisteredModel { .. }
                | Op::RestoreRegisteredModel { .. }
                | Op::PurgeRegisteredModel { .. }
                | Op::PurgeModelVersion { .. }
        ),
    }
}

/// The operations whose effects make up the state after a whole log (`ops[i]` is event
/// `i + 1`), oldest first: an in-place restore (`RewindWorkspace`) takes the state back to
/// what an earlier event left, and a workspace purge clears it, so what they undid is dropped.
pub fn effective(ops: &[Op]) -> Vec<Op> {
    effective_indices(ops)
        .into_iter()
        .map(|i| ops[i].clone())
        .collect()
}

/// Which events of a log to keep in a snapshot (a compacted log): what an in-place restore or
/// a workspace purge undid, and everything about objects that were purged (with the purges
/// themselves), goes. The caller proves the result by replaying both (see `backup.rs`): a
/// snapshot is only written when the two states are identical.
/// IDs grouped by the experiment that holds them.
type Children<'a> = HashMap<&'a str, Vec<&'a str>>;

pub fn compact(ops: &[Op]) -> Vec<bool> {
    let live = effective_indices(ops);
    let mut keep = vec![false; ops.len()];
    let (mut runs_of_exp, mut models_of_exp): (Children, Children) =
        (HashMap::new(), HashMap::new());
    let mut run_exp: HashMap<&str, &str> = HashMap::new();
    let (mut purged_runs, mut purged_models, mut purged_exps): (
        HashSet<&str>,
        HashSet<&str>,
        HashSet<&str>,
    ) = (HashSet::new(), HashSet::new(), HashSet::new());
    for &i in &live {
        match &ops[i] {
            Op::CreateRun {
                run_id,
                experiment_id,
                ..
            } => {
                runs_of_exp.entry(experiment_id).or_default().push(run_id);
                run_exp.insert(run_id, experiment_id);
            }
            Op::CreateLoggedModel {
                model_id,
                experiment_id,
                ..
            } => models_of_exp
                .entry(experiment_id)
                .or_default()
                .push(model_id),
            Op::PurgeRun { run_id } => drop(purged_runs.insert(run_id)),
            Op::PurgeLoggedModel { model_id } => drop(purged_models.insert(model_id)),
            Op::PurgeExperiment { experiment_id } => {
                purged_exps.insert(experiment_id);
                purged_runs.extend(
                    runs_of_exp
                        .get(experiment_id.as_str())
                        .into_iter()
                        .flatten()
                        .copied(),
                );
                purged_models.extend(
                    models_of_exp
                        .get(experiment_id.as_str())
                        .into_iter()
                        .flatten()
                        .copied(),
                );
            }
            _ => {}
        }
    }
    // Registered models purged whole: every operation of their lineage goes.
    let mut lineage_of: HashMap<&str, usize> = HashMap::new();
    let mut lineage: Vec<Option<usize>> = vec![None; ops.len()];
    let mut purged_lineages: HashSet<usize> = HashSet::new();
    for &i in &live {
        let o = &ops[i];
        if let Op::CreateRegisteredModel { name, .. } = o {
            lineage_of.insert(name, i);
        }
        let l = model_name_of(o).and_then(|n| lineage_of.get(n).copied());
        lineage[i] = l;
        match o {
            Op::RenameRegisteredModel { name, new_name, .. } => {
                if let Some(l) = lineage_of.remove(name.as_str()) {
                    lineage_of.insert(new_name, l);
                }
            }
            Op::PurgeRegisteredModel { name } => {
                if let Some(l) = lineage_of.remove(name.as_str()) {
                    purged_lineages.insert(l);
                }
            }
            _ => {}
        }
    }
    // A purged run whose operations reached beyond its own rows (metrics of a logged model,
    // datasets of a live experiment) keeps them all: its purge tidies its own rows after.
    let mut pinned: HashSet<&str> = HashSet::new();
    for &i in &live {
        match &ops[i] {
            Op::LogBatch {
                run_id, metrics, ..
            } if purged_runs.contains(run_id.as_str())
                && metrics.iter().any(|m| m.model_id.is_some()) =>
            {
                pinned.insert(run_id);
            }
            Op::LogInputs { run_id, .. }
                if purged_runs.contains(run_id.as_str())
                    && !run_exp
                        .get(run_id.as_str())
                        .is_some_and(|e| purged_exps.contains(e)) =>
            {
                pinned.insert(run_id);
            }
            _ => {}
        }
    }
    for &i in &live {
        let o = &ops[i];
        // Purges stay (they delete by ID whatever is there); artifact events stay (purges
        // leave artifact records to the artifact retention).
        let is_purge = matches!(
            o,
            Op::PurgeRun { .. }
                | Op::PurgeExperiment { .. }
                | Op::PurgeLoggedModel { .. }
                | Op::PurgeRegisteredModel { .. }
                | Op::PurgeModelVersion { .. }
        );
        let gone = !is_purge
            && (run_of(o).is_some_and(|r| purged_runs.contains(r) && !pinned.contains(r))
                // A purged model's creation stays: an experiment's purge finds its models by
                // their rows, and removes the metrics runs logged to them with them.
                || (logged_model_of(o).is_some_and(|m| purged_models.contains(m)) && !matches!(o, Op::CreateLoggedModel { .. }))
                || experiment_of(o).is_some_and(|e| purged_exps.contains(e))
                || lineage[i].is_some_and(|l| purged_lineages.contains(&l)));
        keep[i] = !gone;
    }
    keep
}

fn effective_indices(ops: &[Op]) -> Vec<usize> {
    // Each event points at the event before it in the effective history; a rewind moves the
    // head back to where it was after the event it names. Linear in the log's length.
    let mut parent: Vec<Option<usize>> = Vec::with_capacity(ops.len());
    let mut head_after: Vec<Option<usize>> = Vec::with_capacity(ops.len());
    let mut head: Option<usize> = None;
    for (i, op) in ops.iter().enumerate() {
        parent.push(head);
        head = match op {
            Op::RewindWorkspace { seq, .. } => match *seq as usize {
                0 => None,
                s if s <= i => head_after[s - 1],
                _ => head,
            },
            Op::PurgeWorkspace {} => None,
            _ => Some(i),
        };
        head_after.push(head);
    }
    let mut out = Vec::new();
    let mut at = head;
    while let Some(i) = at {
        out.push(i);
        at = parent[i];
    }
    out.reverse();
    out
}

fn artifact_under(op: &Op, prefix: &str) -> bool {
    match op {
        Op::PutArtifact { path, .. } | Op::DeleteArtifacts { path } => {
            path == prefix.trim_end_matches('/') || path.starts_with(prefix)
        }
        _ => false,
    }
}

fn run_history(ops: &[Op], id: &str, object: &Object) -> Result<Vec<Op>, HistoryError> {
    let created = ops.iter().find_map(|o| match o {
        Op::CreateRun {
            run_id,
            experiment_id,
            ..
        } if run_id == id => Some(experiment_id.clone()),
        _ => None,
    });
    let Some(experiment_id) = created else {
        return Err(HistoryError::NotThere(object.clone()));
    };
    let purged = ops.iter().any(|o| {
        matches!(o, Op::PurgeRun { run_id } if run_id == id)
            || matches!(o, Op::PurgeExperiment { experiment_id: e } if *e == experiment_id)
    });
    if purged {
        return Err(HistoryError::Purged(object.clone()));
    }
    let prefix = format!("{experiment_id}/{id}/");
    Ok(ops
        .iter()
        .filter(|o| {
            !is_own_lifecycle(o, object) && (run_of(o) == Some(id) || artifact_under(o, &prefix))
        })
        .cloned()
        .collect())
}

fn experiment_history(ops: &[Op], id: &str, object: &Object) -> Result<Vec<Op>, HistoryError> {
    if !ops
        .iter()
        .any(|o| matches!(o, Op::CreateExperiment { experiment_id, .. } if experiment_id == id))
    {
        return Err(HistoryError::NotThere(object.clone()));
    }
    if ops
        .iter()
        .any(|o| matches!(o, Op::PurgeExperiment { experiment_id } if experiment_id == id))
    {
        return Err(HistoryError::Purged(object.clone()));
    }
    let mut runs: HashSet<&str> = HashSet::new();
    let mut models: HashSet<&str> = HashSet::new();
    let mut purged_runs: HashSet<&str> = HashSet::new();
    let mut purged_models: HashSet<&str> = HashSet::new();
    for o in ops {
        match o {
            Op::CreateRun {
                run_id,
                experiment_id,
                ..
            } if experiment_id == id => drop(runs.insert(run_id)),
            Op::CreateLoggedModel {
                model_id,
                experiment_id,
                ..
            } if experiment_id == id => drop(models.insert(model_id)),
            Op::PurgeRun { run_id } => drop(purged_runs.insert(run_id)),
            Op::PurgeLoggedModel { model_id } => drop(purged_models.insert(model_id)),
            _ => {}
        }
    }
    // What was purged before the instant was not part of the experiment at the instant.
    runs.retain(|r| !purged_runs.contains(r));
    models.retain(|m| !purged_models.contains(m));
    let prefix = format!("{id}/");
    Ok(ops
        .iter()
        .filter(|o| {
            !is_own_lifecycle(o, object)
                && (experiment_of(o) == Some(id)
                    || run_of(o).is_some_and(|r| runs.contains(r))
                    || logged_model_of(o).is_some_and(|m| models.contains(m))
                    || artifact_under(o, &prefix))
        })
        .cloned()
        .collect())
}

fn model_name_of(op: &Op) -> Option<&str> {
    match op {
        Op::CreateRegisteredModel { name, .. }
        | Op::RenameRegisteredModel { name, .. }
        | Op::UpdateRegisteredModel { name, .. }
        | Op::DeleteRegisteredModel { name, .. }
        | Op::RestoreRegisteredModel { name, .. }
        | Op::PurgeRegisteredModel { name }
        | Op::SetRegisteredModelTag { name, .. }
        | Op::DeleteRegisteredModelTag { name, .. }
        | Op::SetRegisteredModelAlias { name, .. }
        | Op::DeleteRegisteredModelAlias { name, .. }
        | Op::CreateModelVersion { name, .. }
        | Op::UpdateModelVersion { name, .. }
        | Op::TransitionModelVersionStage { name, .. }
        | Op::DeleteModelVersion { name, .. }
        | Op::RestoreModelVersion { name, .. }
        | Op::PurgeModelVersion { name, .. }
        | Op::SetModelVersionTag { name, .. }
        | Op::DeleteModelVersionTag { name, .. } => Some(name),
        _ => None,
    }
}

/// A registered model's history (from [`history`]) as if the model had always been named `to`.
pub fn with_model_renamed(ops: &[Op], to: &str) -> Vec<Op> {
    ops.iter().map(|o| with_model_name(o, to)).collect()
}

fn with_model_name(op: &Op, to: &str) -> Op {
    let mut op = op.clone();
    match &mut op {
        Op::RenameRegisteredModel { name, new_name, .. } => {
            *name = to.to_owned();
            *new_name = to.to_owned();
        }
        Op::CreateRegisteredModel { name, .. }
        | Op::UpdateRegisteredModel { name, .. }
        | Op::SetRegisteredModelTag { name, .. }
        | Op::DeleteRegisteredModelTag { name, .. }
        | Op::SetRegisteredModelAlias { name, .. }
        | Op::DeleteRegisteredModelAlias { name, .. }
        | Op::CreateModelVersion { name, .. }
        | Op::UpdateModelVersion { name, .. }
        | Op::TransitionModelVersionStage { name, .. }
        | Op::SetModelVersionTag { name, .. }
        | Op::DeleteModelVersionTag { name, .. }
        | Op::DeleteModelVersion { name, .. }
        | Op::RestoreModelVersion { name, .. } => *name = to.to_owned(),
        _ => {}
    }
    op
}

fn model_history(ops: &[Op], name: &str, object: &Object) -> Result<Vec<Op>, HistoryError> {
    // A registered model is known by its name, which renames change: follow each model from
    // its creation (its lineage) to the name it has at the end.
    let mut lineage_of: HashMap<String, usize> = HashMap::new();
    let mut tagged: Vec<(usize, &Op)> = Vec::new();
    let mut purged: HashSet<usize> = HashSet::new();
    let mut versions_purged: HashSet<(usize, i64)> = HashSet::new();
    for (i, o) in ops.iter().enumerate() {
        match o {
            Op::CreateRegisteredModel { name, .. } => {
                lineage_of.insert(name.clone(), i);
            }
            Op::RenameRegisteredModel { name, new_name, .. } => {
                if let Some(l) = lineage_of.remove(name) {
                    lineage_of.insert(new_name.clone(), l);
                    // Kept as a rename to the final name (a no-op but for its time).
                    tagged.push((l, o));
                }
                continue;
            }
            Op::PurgeRegisteredModel { name } => {
                if let Some(l) = lineage_of.remove(name) {
                    purged.insert(l);
                }
                continue;
            }
            Op::PurgeModelVersion { name, version } => {
                if let Some(&l) = lineage_of.get(name) {
                    versions_purged.insert((l, *version));
                }
                continue;
            }
            _ => {}
        }
        if let Some(l) = model_name_of(o).and_then(|n| lineage_of.get(n)) {
            tagged.push((*l, o));
        }
    }
    let Some(&target) = lineage_of.get(name) else {
        return Err(HistoryError::NotThere(object.clone()));
    };
    Ok(tagged
        .into_iter()
        .filter(|(l, o)| {
            let version = match o {
                Op::CreateModelVersion { version, .. }
                | Op::UpdateModelVersion { version, .. }
                | Op::TransitionModelVersionStage { version, .. }
                | Op::SetModelVersionTag { version, .. }
                | Op::DeleteModelVersionTag { version, .. } => Some(*version),
                Op::SetRegisteredModelAlias { version, .. }
                | Op::DeleteModelVersion { version, .. }
                | Op::RestoreModelVersion { version, .. } => Some(*version),
                _ => None,
            };
            *l == target
                && !is_own_lifecycle(o, object)
                && !version.is_some_and(|v| versions_purged.contains(&(target, v)))
        })
        .map(|(_, o)| with_model_name(o, name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::KeyValue;

    fn run(id: &str, exp: &str) -> Op {
        Op::CreateRun {
            run_id: id.into(),
            experiment_id: exp.into(),
            user_id: "u".into(),
            run_name: "r".into(),
            start_time: 1,
            artifact_uri: format!("mlflow-artifacts:/{exp}/{id}/artifacts"),
            tags: vec![],
        }
    }

    #[test]
    fn a_run_is_cut_out_with_its_artifacts_and_without_its_deletion() {
        let ops = vec![
            run("r1", "1"),
            run("r2", "1"),
            Op::LogBatch {
                run_id: "r1".into(),
                metrics: vec![],
                params: vec![KeyValue {
                    key: "p".into(),
                    value: "1".into(),
                }],
                tags: vec![],
            },
            Op::PutArtifact {
                path: "1/r1/artifacts/model.pkl".into(),
                size: 3,
                sha256: "x".into(),
            },
            Op::PutArtifact {
                path: "1/r2/artifacts/model.pkl".into(),
                size: 3,
                sha256: "y".into(),
            },
            Op::DeleteRun {
                run_id: "r1".into(),
                time: 5,
            },
        ];
        let h = history(&ops, &Object::Run("r1".into())).unwrap();
        assert_eq!(h, vec![ops[0].clone(), ops[2].clone(), ops[3].clone()]);
        let purged = [
            ops.clone(),
            vec![Op::PurgeRun {
                run_id: "r1".into(),
            }],
        ]
        .concat();
        assert_eq!(
            history(&purged, &Object::Run("r1".into())),
            Err(HistoryError::Purged(Object::Run("r1".into())))
        );
        assert_eq!(
            history(&ops, &Object::Run("r9".into())),
            Err(HistoryError::NotThere(Object::Run("r9".into())))
        );
    }

    #[test]
    fn rewinds_and_purges_drop_what_they_undid() {
        let tag = |v: &str| Op::SetExperimentTag {
            experiment_id: "0".into(),
            key: "k".into(),
            value: v.into(),
            time: 0,
        };
        let ops = vec![
            tag("1"),
            tag("2"),
            Op::RewindWorkspace { seq: 1, time: 0 },
            tag("3"),
            Op::RewindWorkspace { seq: 2, time: 0 },
            tag("4"),
        ];
        // After event 2 the state was [1, 2]; the second rewind goes back there.
        assert_eq!(effective(&ops), vec![tag("1"), tag("2"), tag("4")]);
        let ops = vec![tag("1"), Op::PurgeWorkspace {}, tag("2")];
        assert_eq!(effective(&ops), vec![tag("2")]);
    }

    #[test]
    fn a_registered_model_is_followed_through_renames() {
        let create = |n: &str| Op::CreateRegisteredModel {
            name: n.into(),
            description: None,
            tags: vec![],
            time: 1,
        };
        let tag = |n: &str, v: &str| Op::SetRegisteredModelTag {
            name: n.into(),
            key: "k".into(),
            value: v.into(),
        };
        let ops = vec![
            create("a"),
            tag("a", "1"),
            Op::RenameRegisteredModel {
                name: "a".into(),
                new_name: "b".into(),
                time: 2,
            },
            create("a"),
            tag("a", "other"),
            tag("b", "2"),
            Op::DeleteRegisteredModel {
                name: "b".into(),
                time: 3,
            },
        ];
        let h = history(&ops, &Object::RegisteredModel("b".into())).unwrap();
        assert_eq!(
            h,
            vec![
                create("b"),
                tag("b", "1"),
                Op::RenameRegisteredModel {
                    name: "b".into(),
                    new_name: "b".into(),
                    time: 2
                },
                tag("b", "2")
            ]
        );
        let h = history(&ops, &Object::RegisteredModel("a".into())).unwrap();
        assert_eq!(h, vec![create("a"), tag("a", "other")]);
    }
}
