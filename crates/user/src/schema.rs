//! Diesel table definitions for the `users` schema (see migrations/user).

diesel::table! {
    users.tenants (id) {
        id -> Uuid,
        name -> Text,
        slug -> Text,
        created_at -> Timestamptz,
        status -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users.users (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        email -> Text,
        username -> Nullable<Text>,
        display_name -> Text,
        role -> Text,
        status -> Text,
        password_hash -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users.tenant_rate_limits (tenant_id) {
        tenant_id -> Uuid,
        rules -> Jsonb,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(users -> tenants (tenant_id));
diesel::joinable!(tenant_rate_limits -> tenants (tenant_id));
diesel::allow_tables_to_appear_in_same_query!(tenants, users, tenant_rate_limits);
