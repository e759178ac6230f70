"""The web form: the customer's own contact form, embeddable, without JavaScript if need be."""
