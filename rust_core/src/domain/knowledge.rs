//! `hms.agent.v1.KnowledgeService`: entries unique by (namespace, key).

use std::ops::Bound;

use prost::Message as _;

use super::paging::{decode_token, encode_token, fill_page, record_weight};
use super::{Admit, Domain, Write, check_revision, new_id, not_found, now, required};
use crate::error::{Code, HmsError, Result};
use crate::events::EventBus;
use crate::proto::hms::agent::v1::{
    DeleteKnowledgeRequest, DeleteKnowledgeResponse, GetKnowledgeRequest, KnowledgeEntry,
    PutKnowledgeRequest, QueryKnowledgeRequest, QueryKnowledgeResponse,
};
use crate::proto::hms::events::v1::event::Payload;

/// Page tokens of queries carry (namespace, key), split by a NUL that
/// neither may contain.
fn token_key(key: &(String, String)) -> String {
    format!("{}\0{}", key.0, key.1)
}

fn check_entry(entry: &KnowledgeEntry) -> Result<()> {
    required(&entry.namespace, "entry.namespace")?;
    required(&entry.key, "entry.key")?;
    for (field, value) in [
        ("entry.namespace", &entry.namespace),
        ("entry.key", &entry.key),
    ] {
        if value.contains('\0') {
            return Err(
                HmsError::invalid_argument(format!("`{field}` must not contain NUL"))
                    .with_detail("field", field),
            );
        }
    }
    if !(0.0..=1.0).contains(&entry.confidence) {
        return Err(HmsError::invalid_argument(format!(
            "`entry.confidence` is {}: it must be between 0 and 1",
            entry.confidence
        ))
        .with_detail("field", "entry.confidence"));
    }
    if !entry.text.is_empty() && !entry.content.is_empty() {
        return Err(HmsError::invalid_argument(
            "give either `entry.text` or `entry.content` (with `content_type`), not both",
        )
        .with_detail("field", "entry.content"));
    }
    Ok(())
}

impl Domain {
    pub fn put_knowledge(
        &self,
        events: &EventBus,
        admit: &impl Admit,
        request: PutKnowledgeRequest,
    ) -> Result<KnowledgeEntry> {
        let mut draft = request.entry.unwrap_or_default();
        check_entry(&draft)?;
        // A confidence is a probability, where -0.0 means nothing more than
        // 0; storing +0.0 keeps every answer exact in every format (the
        // generated encoder would drop -0.0 as the default).
        draft.confidence += 0.0;
        let mut state = self.state();
        let slot = (draft.namespace.clone(), draft.key.clone());
        let existing = state
            .tables
            .knowledge_keys
            .get(&slot)
            .and_then(|id| state.tables.knowledge.get(id));
        if !draft.id.is_empty() && existing.is_none_or(|e| e.id != draft.id) {
            return Err(match state.tables.knowledge.get(&draft.id) {
                Some(other) => HmsError::new(
                    Code::FailedPrecondition,
                    format!(
                        "entry `{}` lives at namespace `{}` key `{}`: namespace and key never change",
                        draft.id, other.namespace, other.key
                    ),
                )
                .with_detail("id", &draft.id),
                None => not_found("knowledge entry", &draft.id),
            });
        }
        let stamp = now();
        let entry = match existing {
            Some(current) => {
                check_revision(
                    "knowledge entry",
                    &current.id,
                    draft.revision,
                    current.revision,
                )?;
                KnowledgeEntry {
                    id: current.id.clone(),
                    created_at: current.created_at,
                    updated_at: Some(stamp),
                    revision: current.revision + 1,
                    ..draft
                }
            }
            None => {
                if draft.revision != 0 {
                    return Err(HmsError::new(
                        Code::Aborted,
                        format!(
                            "no entry at namespace `{}` key `{}` has revision {}: it does not exist (any more)",
                            draft.namespace, draft.key, draft.revision
                        ),
                    )
                    .with_detail("expected_revision", draft.revision));
                }
                KnowledgeEntry {
                    id: new_id(),
                    created_at: Some(stamp),
                    updated_at: Some(stamp),
                    revision: 1,
                    ..draft
                }
            }
        };
        admit.admit(&entry)?;
        state.persist(&[Write::Knowledge(&entry)])?;
        state.tables.knowledge_keys.insert(slot, entry.id.clone());
        state
            .tables
            .knowledge
            .insert(entry.id.clone(), entry.clone());
        events.publish(
            "knowledge.put",
            &entry.id,
            &entry.agent_id,
            Payload::Knowledge(entry.clone()),
        );
        Ok(entry)
    }

    pub fn get_knowledge(&self, request: GetKnowledgeRequest) -> Result<KnowledgeEntry> {
        let state = self.state();
        if !request.id.is_empty() {
            return state
                .tables
                .knowledge
                .get(&request.id)
                .cloned()
                .ok_or_else(|| not_found("knowledge entry", &request.id));
        }
        if request.namespace.is_empty() || request.key.is_empty() {
            return Err(HmsError::invalid_argument(
                "give `id`, or `namespace` and `key`",
            ));
        }
        state
            .tables
            .knowledge_keys
            .get(&(request.namespace.clone(), request.key.clone()))
            .and_then(|id| state.tables.knowledge.get(id))
            .cloned()
            .ok_or_else(|| {
                HmsError::not_found(format!(
                    "no knowledge entry at namespace `{}` key `{}`",
                    request.namespace, request.key
                ))
                .with_detail("namespace", &request.namespace)
                .with_detail("key", &request.key)
            })
    }

    pub fn query_knowledge(
        &self,
        request: QueryKnowledgeRequest,
    ) -> Result<QueryKnowledgeResponse> {
        let start_after = decode_token(&request.page_token)?
            .map(|token| match token.split_once('\0') {
                Some((namespace, key)) => Ok((namespace.to_owned(), key.to_owned())),
                None => Err(HmsError::invalid_argument(
                    "page_token is not one this service returned",
                )),
            })
            .transpose()?;
        let state = self.state();
        let tables = &state.tables;
        let lower = match start_after {
            Some(key) => Bound::Excluded(key),
            None => Bound::Unbounded,
        };
        // By (namespace, key), each entry looked up once.
        let candidates = tables
            .knowledge_keys
            .range((lower, Bound::Unbounded))
            .filter_map(|(slot, id)| Some((slot, tables.knowledge.get(id)?)))
            .filter(|(_, entry)| {
                (request.namespace.is_empty() || entry.namespace == request.namespace)
                    && entry.key.starts_with(&request.key_prefix)
                    && request.tags.iter().all(|t| entry.tags.contains(t))
                    && entry.confidence >= request.min_confidence
                    && (request.agent_id.is_empty() || entry.agent_id == request.agent_id)
            });
        let (found, more) = fill_page(candidates, self.page_limit(request.page_size), |(_, e)| {
            record_weight(e.encoded_len())
        });
        let next_page_token = match (more, found.last()) {
            (true, Some((slot, _))) => encode_token(&token_key(slot)),
            _ => String::new(),
        };
        Ok(QueryKnowledgeResponse {
            entries: found.into_iter().map(|(_, entry)| entry.clone()).collect(),
            next_page_token,
        })
    }

    pub fn delete_knowledge(
        &self,
        events: &EventBus,
        admit: &impl Admit,
        request: DeleteKnowledgeRequest,
    ) -> Result<DeleteKnowledgeResponse> {
        required(&request.id, "id")?;
        let mut state = self.state();
        let current = state
            .tables
            .knowledge
            .get(&request.id)
            .ok_or_else(|| not_found("knowledge entry", &request.id))?;
        check_revision(
            "knowledge entry",
            &request.id,
            request.revision,
            current.revision,
        )?;
        admit.admit(&DeleteKnowledgeResponse {})?;
        state.persist(&[Write::DeleteKnowledge(&request.id)])?;
        let entry = state
            .tables
            .knowledge
            .remove(&request.id)
            .expect("checked above under the same lock");
        state
            .tables
            .knowledge_keys
            .remove(&(entry.namespace.clone(), entry.key.clone()));
        events.publish(
            "knowledge.deleted",
            &entry.id,
            &entry.agent_id,
            Payload::Knowledge(entry.clone()),
        );
        Ok(DeleteKnowledgeResponse {})
    }
}
