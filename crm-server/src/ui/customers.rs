//! Contacts (prefix search, pages, create, edit, notes) and companies.

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;

use super::session::Viewer;
use super::{
    FieldErrors, PAGE_SIZE, UiError, UiResult, field, optional, optional_id, page, require,
    see_other,
};
use crate::AppState;
use crate::customers::{
    Company, CompanyInput, CompanyParams, Contact, ContactInput, ContactParams, Key, store,
};
use crate::domain::{Email, Name, NoteKind, Text};
use crate::error::ApiError;
use crate::http::Id;
use crate::notes::{self, Note, NoteInput, NoteParams, Parent};

/// Routes of contacts and companies.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/contacts", get(contacts).post(create_contact))
        .route("/ui/contacts/new", get(new_contact))
        .route("/ui/contacts/{id}", get(contact).post(update_contact))
        .route("/ui/contacts/{id}/notes", post(add_note))
        .route("/ui/companies", get(companies).post(create_company))
        .route("/ui/companies/new", get(new_company))
        .route("/ui/companies/{id}", get(company).post(update_company))
}

/// Search and position of a list page.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Search text.
    #[serde(default)]
    pub q: String,
    /// Cursor of the page.
    pub cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "contacts.html")]
struct ContactList<'a> {
    v: &'a Viewer,
    q: &'a str,
    items: Vec<Contact>,
    next: Option<String>,
}

async fn contacts(
    State(st): State<AppState>,
    Extension(v): Extension<Viewer>,
    Query(lq): Query<ListQuery>,
) -> UiResult {
    let params = ContactParams {
        q: Some(lq.q.clone()).filter(|q| !q.trim().is_empty()),
        company_id: None,
        created_from: None,
        created_to: None,
        sort: Some("last_name".into()),
        cursor: lq.cursor.clone(),
        limit: Some(PAGE_SIZE),
    };
    let kind = st.db.kind;
    let list = store::list_contacts(&mut *st.db.pool.acquire().await?, kind, &params).await?;
    Ok(page(&ContactList {
        v: &v,
        q: &lq.q,
        items: list.items,
        next: list.next_cursor,
    }))
}

/// The contact form's fields as typed.
#[derive(Debug, Default, Deserialize)]
pub struct ContactForm {
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    company_id: String,
    #[serde(default)]
    version: i64,
}

impl ContactForm {
    fn of(c: &Contact) -> Self {
        Self {
            first_name: c.first_name.clone(),
            last_name: c.last_name.clone(),
            email: c.email.clone(),
            phone: c.phone.clone().unwrap_or_default(),
            company_id: c.company_id.map(|i| i.to_string()).unwrap_or_default(),
            version: c.version,
        }
    }

    fn input(&self, errors: &mut FieldErrors) -> Option<ContactInput> {
        let first_name = field(errors, "first_name", &self.first_name, Name::parse);
        let last_name = field(errors, "last_name", &self.last_name, Name::parse);
        let email = field(errors, "email", &self.email, Email::parse);
        let phone = optional(errors, "phone", &self.phone, Name::parse);
        let company_id = optional_id(errors, "company_id", &self.company_id);
        Some(ContactInput {
            first_name: first_name?,
            last_name: last_name?,
            email: email?,
            phone,
            company_id,
        })
        .filter(|_| errors.is_empty())
    }
}

#[derive(Template)]
#[template(path = "contact_form.html")]
struct ContactFormPage<'a> {
    v: &'a Viewer,
    f: &'a ContactForm,
    errors: &'a FieldErrors,
}

#[derive(Template)]
#[template(path = "contact.html")]
struct ContactPage<'a> {
    v: &'a Viewer,
    c: &'a Contact,
    f: &'a ContactForm,
    errors: &'a FieldErrors,
    notes: Vec<Note>,
    next: Option<String>,
    note_error: Option<String>,
}

async fn new_contact(Extension(v): Extension<Viewer>) -> UiResult {
    require(v.role().writes_customers())?;
    Ok(page(&ContactFormPage {
        v: &v,
        f: &ContactForm::default(),
        errors: &FieldErrors::new(),
    }))
}

/// Put a storage error on the form's fields where it belongs: a taken
/// email, a company that does not exist, a change made meanwhile.
fn form_error(e: ApiError, errors: &mut FieldErrors) -> Result<(), UiError> {
    match e {
        ApiError::Conflict { field } if field == "email" => {
            errors.insert("email", "is already used by another contact".into());
        }
        ApiError::Conflict { field } if field == "name" => {
            errors.insert("name", "is already taken".into());
        }
        ApiError::Validation { field, .. } if field == "company_id" => {
            errors.insert("company_id", "no company has this id".into());
        }
        ApiError::PreconditionFailed => {
            errors.insert(
                "form",
                "Someone changed this record since you opened it. Reload to see their change."
                    .into(),
            );
        }
        other => return Err(other.into()),
    }
    Ok(())
}

async fn create_contact(
    State(st): State<AppState>,
    Extension(v): Extension<Viewer>,
    Form(f): Form<ContactForm>,
) -> UiResult {
    require(v.role().writes_customers())?;
    let mut errors = FieldErrors::new();
    if let Some(input) = f.input(&mut errors) {
        match store::insert_contact(&mut *st.db.pool.acquire().await?, input).await {
            Ok(c) => return Ok(see_other(&format!("/ui/contacts/{}", c.id))),
            Err(e) => form_error(e, &mut errors)?,
        }
    }
    let mut res = page(&ContactFormPage {
        v: &v,
        f: &f,
        errors: &errors,
    });
    *res.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    Ok(res)
}

async fn contact(
    State(st): State<AppState>,
    Extension(v): Extension<Viewer>,
    Id(id): Id,
    Query(np): Query<NoteParams>,
) -> UiResult {
    show_contact(&st, &v, id, None, FieldErrors::new(), np.cursor, None).await
}

async fn show_contact(
    st: &AppState,
    v: &Viewer,
    id: i64,
    form: Option<ContactForm>,
    errors: FieldErrors,
    cursor: Option<String>,
    note_error: Option<String>,
) -> UiResult {
    let mut conn = st.db.pool.acquire().await?;
    let c = store::get_contact(&mut conn, id).await?;
    let np = NoteParams {
        cursor,
        limit: Some(PAGE_SIZE),
    };
    let notes = notes::list_for(&mut conn, Parent::Contact, id, &np).await?;
    let f = form.unwrap_or_else(|| ContactForm::of(&c));
    let status = if errors.is_empty() && note_error.is_none() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut res = page(&ContactPage {
        v,
        c: &c,
        f: &f,
        errors: &errors,
        notes: notes.items,
        next: notes.next_cursor,
        note_error,
    });
    *res.status_mut() = status;
    Ok(res)
}

async fn update_contact(
    State(st): State<AppState>,
    Extension(v): Extension<Viewer>,
    Id(id): Id,
    Form(f): Form<ContactForm>,
) -> UiResult {
    require(v.role().writes_customers())?;
    let mut errors = FieldErrors::new();
    if let Some(input) = f.input(&mut errors) {
        st.cache.evict(&Key::Contact(id));
        let mut conn = st.db.pool.acquire().await?;
        let res = store::update_contact(&mut conn, id, Some(f.version), input).await;
        st.cache.evict(&Key::Contact(id));
        match res {
            Ok(c) => return Ok(see_other(&format!("/ui/contacts/{}", c.id))),
            Err(e) => form_error(e, &mut errors)?,
        }
    }
    show_contact(&st, &v, id, Some(f), errors, None, None).await
}

/// A new note on a contact.
#[derive(Debug, Deserialize)]
pub struct NoteForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    body: String,
}

async fn add_note(
    State(st): State<AppState>,
    Extension(v): Extension<Viewer>,
    Id(id): Id,
    Form(f): Form<NoteForm>,
) -> UiResult {
    require(v.role().writes_customers())?;
    let kind = NoteKind::parse(&f.kind).unwrap_or(NoteKind::Note);
    match Text::parse(&f.body) {
        Ok(body) => {
            let input = NoteInput { kind, body };
            notes::insert(
                &mut *st.db.pool.acquire().await?,
                Parent::Contact,
                id,
                input,
            )
            .await?;
            Ok(see_other(&format!("/ui/contacts/{id}")))
        }
        Err(m) => show_contact(&st, &v, id, None, FieldErrors::new(), None, Some(m)).await,
    }
}

#[derive(Template)]
#[template(path = "companies.html")]
struct CompanyList<'a> {
    v: &'a Viewer,
    q: &'a str,
    items: Vec<Company>,
    next: Option<String>,
}

async fn companies(
    State(st): State<AppState>,
    Extension(v): Extension<Viewer>,
    Query(lq): Query<ListQuery>,
) -> UiResult {
    let params = CompanyParams {
        q: Some(lq.q.clone()).filter(|q| !q.trim().is_empty()),
        created_from: None,
        created_to: None,
        sort: Some("name".into()),
        cursor: lq.cursor.clone(),
        limit: Some(PAGE_SIZE),
    };
    let list = store::list_companies(&mut *st.db.pool.acquire().await?, &params).await?;
    Ok(page(&CompanyList {
        v: &v,
        q: &lq.q,
        items: list.items,
        next: list.next_cursor,
    }))
}

/// The company form's fields as typed.
#[derive(Debug, Default, Deserialize)]
pub struct CompanyForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    domain: String,
    #[serde(default)]
    industry: String,
    #[serde(default)]
    version: i64,
}

impl CompanyForm {
    fn input(&self, errors: &mut FieldErrors) -> Option<CompanyInput> {
        let name = field(errors, "name", &self.name, Name::parse);
        let domain = optional(errors, "domain", &self.domain, Name::parse);
        let industry = optional(errors, "industry", &self.industry, Name::parse);
        Some(CompanyInput {
            name: name?,
            domain,
            industry,
        })
        .filter(|_| errors.is_empty())
    }
}

#[derive(Template)]
#[template(path = "company_form.html")]
struct CompanyFormPage<'a> {
    v: &'a Viewer,
    id: Option<i64>,
    f: &'a CompanyForm,
    errors: &'a FieldErrors,
}

async fn new_company(Extension(v): Extension<Viewer>) -> UiResult {
    require(v.role().writes_customers())?;
    Ok(page(&CompanyFormPage {
        v: &v,
        id: None,
        f: &CompanyForm::default(),
        errors: &FieldErrors::new(),
    }))
}

async fn company(
    State(st): State<AppState>,
    Extension(v): Extension<Viewer>,
    Id(id): Id,
) -> UiResult {
    let c = store::get_company(&mut *st.db.pool.acquire().await?, id).await?;
    let f = CompanyForm {
        name: c.name,
        domain: c.domain.unwrap_or_default(),
        industry: c.industry.unwrap_or_default(),
        version: c.version,
    };
    Ok(page(&CompanyFormPage {
        v: &v,
        id: Some(id),
        f: &f,
        errors: &FieldErrors::new(),
    }))
}

async fn create_company(
    State(st): State<AppState>,
    Extension(v): Extension<Viewer>,
    Form(f): Form<CompanyForm>,
) -> UiResult {
    save_company(st, v, None, f).await
}

async fn update_company(
    State(st): State<AppState>,
    Extension(v): Extension<Viewer>,
    Id(id): Id,
    Form(f): Form<CompanyForm>,
) -> UiResult {
    save_company(st, v, Some(id), f).await
}

async fn save_company(st: AppState, v: Viewer, id: Option<i64>, f: CompanyForm) -> UiResult {
    require(v.role().writes_customers())?;
    let mut errors = FieldErrors::new();
    if let Some(input) = f.input(&mut errors) {
        let mut conn = st.db.pool.acquire().await?;
        let res = match id {
            None => store::insert_company(&mut conn, input).await,
            Some(id) => {
                st.cache.evict(&Key::Company(id));
                let res = store::update_company(&mut conn, id, Some(f.version), input).await;
                st.cache.evict(&Key::Company(id));
                res
            }
        };
        match res {
            Ok(_) => return Ok(see_other("/ui/companies")),
            Err(e) => form_error(e, &mut errors)?,
        }
    }
    let mut res = page(&CompanyFormPage {
        v: &v,
        id,
        f: &f,
        errors: &errors,
    });
    *res.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    Ok(res)
}
